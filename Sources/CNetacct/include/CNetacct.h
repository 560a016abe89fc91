#ifndef CNETACCT_H
#define CNETACCT_H
/* The structs shared with the BPF programs: bpf/<tool>.h is their one definition. */
#include "../../../bpf/accounting.h"
#include "../../../bpf/nic.h"
#include "../../../bpf/connections.h"
#include "../../../bpf/drops.h"
#include "../../../bpf/latency.h"
#include "../../../bpf/wire.h"
#include "../../../bpf/tcp_health.h"
#endif
