#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "CLibbpf.h"

static netacct_libbpf_log_sink current_sink;

static int forward(enum libbpf_print_level level, const char *format, va_list args)
{
	va_list measure;
	char *line;
	int n;

	if (!current_sink)
		return 0;
	/* Messages can be long (a verifier log comes as one): size them first. */
	va_copy(measure, args);
	n = vsnprintf(NULL, 0, format, measure);
	va_end(measure);
	if (n < 0 || !(line = malloc((size_t)n + 1)))
		return n;
	vsnprintf(line, (size_t)n + 1, format, args);
	/* libbpf ends most messages with a newline; the sink gets bare text. */
	for (size_t len = (size_t)n; len > 0 && line[len - 1] == '\n'; len--)
		line[len - 1] = '\0';
	current_sink(level, line);
	free(line);
	return n;
}

void netacct_libbpf_set_log_sink(netacct_libbpf_log_sink sink)
{
	current_sink = sink;
	libbpf_set_print(forward);
}
