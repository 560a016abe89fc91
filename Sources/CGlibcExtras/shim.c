#define _GNU_SOURCE
#include <string.h>
#include "CGlibcExtras.h"

const char *netacct_errno_name(int number)
{
	return strerrorname_np(number);
}
