/*
 * The two guests of the CPU engine's benchmark (kvm-floor.c; scripts/bench/kvm.js gets
 * the same bytes from `kvm-floor dump`). 16-bit real-mode code run from GPA 0 with
 * ECX = the count; both end with `out 0x81, al` and halt.
 */
#ifndef KVM_BENCH_GUESTS_H
#define KVM_BENCH_GUESTS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define KVM_BENCH_OUT_PORT 0x80
#define KVM_BENCH_DONE_PORT 0x81

struct kvm_bench_guest {
	const char *name;
	const uint8_t *bytes;
	size_t length;
};

/* 0: out 0x80, al; dec ecx; jnz 0; out 0x81, al; hlt; jmp $-1 */
static const uint8_t kvm_bench_out[] = { 0xe6, 0x80, 0x66, 0x49, 0x75, 0xfa,
					 0xe6, 0x81, 0xf4, 0xeb, 0xfd };
/* 0: dec ecx; jnz 0; out 0x81, al; hlt; jmp $-1 */
static const uint8_t kvm_bench_compute[] = { 0x66, 0x49, 0x75, 0xfc, 0xe6, 0x81, 0xf4, 0xeb, 0xfd };

static inline const struct kvm_bench_guest *kvm_bench_guest(const char *name)
{
	static const struct kvm_bench_guest guests[] = {
		{ "out", kvm_bench_out, sizeof(kvm_bench_out) },
		{ "compute", kvm_bench_compute, sizeof(kvm_bench_compute) },
	};
	for (size_t i = 0; i < sizeof(guests) / sizeof(guests[0]); i++)
		if (strcmp(guests[i].name, name) == 0)
			return &guests[i];
	return NULL;
}

#endif
