/* CNetacct has no code of its own: it only makes the shared headers in bpf/ importable from Swift. */
#include "CNetacct.h"
