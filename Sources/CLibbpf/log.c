#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "CLibbpf.h"

static netacct_libbpf_log_sink current_sink;

static int forward(enum libbpf_print_level level, const char *format, va_list args)
{
	char line[1024];
	int n;

	if (!current_sink)
		return 0;
	n = vsnprintf(line, sizeof(line), format, args);
	if (n < 0)
		return n;
	/* libbpf ends most messages with a newline; the sink gets bare lines. */
	for (size_t len = strlen(line); len > 0 && line[len - 1] == '\n'; len--)
		line[len - 1] = '\0';
	current_sink(level, line);
	return n;
}

void netacct_libbpf_set_log_sink(netacct_libbpf_log_sink sink)
{
	current_sink = sink;
	libbpf_set_print(forward);
}
