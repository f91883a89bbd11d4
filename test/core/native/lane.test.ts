// The lane (src/core/sim/lane.ts, helper/hsm-lane.h, helper/SHIM.md "The lane"): a
// shimmed C program of our own (compiled here) serves a real-mode guest executing on KVM,
// whose port I/O reaches it through the lane page rather than the ring, and the model
// keeps every rule: the reads' values land in the guest, an ioeventfd's port is left to
// the ioeventfd (§4.3), the trace sees every request, a model-sent request is completed
// over the ring, a vCPU with a lane request out is busy for `guest access`, and
// DESTROY_IOREQ_CLIENT ends an ATTACH asleep on the lane with ENODEV (§4.7). The same
// program with HSM_SHIM_LANE=0 must see the very same, over the ring.

import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { shimPath } from '../../../src/core/native/preflight.js'
import { SimServer } from '../../../src/core/native/sim-server.js'
import { IoreqState } from '../../../src/core/abi/constants.js'
import { Ioctl } from '../../../src/core/abi/ioctls.js'
import { offsetOf } from '../../../src/core/abi/layout.js'
import { acrn_vcpu_regs } from '../../../src/core/abi/structs.js'
import {
  processedIndex,
  REQ_ADDRESS,
  REQ_DIRECTION,
  REQ_VALUE,
} from '../../../src/core/sim/hypervisor/io.js'
import { allocateBacking } from '../../../src/core/sim/kernel/shared-memory.js'
import { LANE_MAGIC, LANE_SIZE, LANE_VERSION } from '../../../src/core/sim/lane.js'
import { createSimPlatform } from '../../../src/index.js'
import { vmCreation } from '../sim/conformance/helpers.js'
import { assemble } from '../../support/assemble.js'
import { guestCodeUnavailable } from '../../support/guests.js'
import { buildHelper, helperUnavailable, Probe } from './support.js'

const SERVED = 300

const PROBE = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/acrn.h>

static struct acrn_io_request_buffer page __attribute__((aligned(4096)));
static int fd;
static unsigned vmid;
static atomic_int stop;
static void say(const char *what, int r) { printf("%s %d %s\n", what, r, r < 0 ? strerrorname_np(errno) : "OK"); fflush(stdout); }
static void wait_line(const char *want) { char l[64]; while (fgets(l, sizeof l, stdin)) if (strncmp(l, want, strlen(want)) == 0) return; exit(3); }
static void *stdin_main(void *a) { (void)a; wait_line("stop"); atomic_store(&stop, 1); return NULL; }
static void *attach_main(void *a) { (void)a; say("attach-during-destroy", ioctl(fd, ACRN_IOCTL_ATTACH_IOREQ_CLIENT, 0)); return NULL; }

static unsigned answered, bad, served;
/* Serve slot 0 if the hypervisor dispatched a request to it: IN 0x70 gets 0x40 + n,
 * OUT 0x71 must carry what the last IN got. */
static void serve(void) {
  struct acrn_io_request *r = &page.req_slot[0];
  if (__atomic_load_n(&r->processed, __ATOMIC_ACQUIRE) != ACRN_IOREQ_STATE_PROCESSING) return;
  struct acrn_pio_request *p = &r->reqs.pio_request;
  if (p->direction == ACRN_IOREQ_DIR_READ) { answered = 0x40 + (served & 0x3f); p->value = answered; }
  else if (p->address == 0x71 && p->value != answered) bad++;
  else if (p->address != 0x71) bad++;
  struct acrn_ioreq_notify n = { .vmid = (uint16_t)vmid, .vcpu = 0 };
  if (ioctl(fd, ACRN_IOCTL_NOTIFY_REQUEST_FINISH, &n)) { perror("notify"); exit(4); }
  served++;
}

int main(int argc, char **argv) {
  uint8_t *ram;
  if (posix_memalign((void **)&ram, 4096, 1 << 20)) return 1;
  memset(ram, 0, 1 << 20);
  FILE *f = fopen(argv[1], "rb");
  if (!f || fread(ram, 1, 4096, f) == 0) return 1;
  fclose(f);
  unsigned want = (unsigned)atoi(argv[2]);
  fd = open("/dev/acrn_hsm", O_RDWR | O_CLOEXEC);
  struct acrn_vm_creation c; memset(&c, 0, sizeof c);
  c.ioreq_buf = (unsigned long)&page; c.cpu_affinity = 2;
  if (fd < 0 || ioctl(fd, ACRN_IOCTL_CREATE_VM, &c)) { perror("create"); return 1; }
  vmid = c.vmid;
  struct acrn_vm_memmap mm; memset(&mm, 0, sizeof mm);
  mm.type = ACRN_MEMMAP_RAM; mm.vma_base = (unsigned long)ram; mm.len = 1 << 20; mm.attr = ACRN_MEM_ACCESS_RWX;
  if (ioctl(fd, ACRN_IOCTL_SET_MEMSEG, &mm)) { perror("memseg"); return 1; }
  struct acrn_vcpu_regs regs; memset(&regs, 0, sizeof regs);
  regs.vcpu_regs.cr0 = 0x30; regs.vcpu_regs.cs_ar = 0x009f; regs.vcpu_regs.cs_sel = 0xf000;
  regs.vcpu_regs.cs_limit = 0xffff;
  if (ioctl(fd, ACRN_IOCTL_SET_VCPU_REGS, &regs)) { perror("regs"); return 1; }
  say("client", ioctl(fd, ACRN_IOCTL_CREATE_IOREQ_CLIENT, 0));
  int kicks = eventfd(0, EFD_NONBLOCK);
  struct acrn_ioeventfd io; memset(&io, 0, sizeof io);
  io.fd = kicks; io.flags = ACRN_IOEVENTFD_FLAG_PIO; io.addr = 0x72; io.len = 1;
  say("ioeventfd", ioctl(fd, ACRN_IOCTL_IOEVENTFD, &io));
  char line[512]; int lane = 0; FILE *maps = fopen("/proc/self/maps", "r");
  while (fgets(line, sizeof line, maps)) if (strstr(line, "hsm-shim-lane")) lane = 1;
  fclose(maps);
  printf("vmid %u lane %d\n", vmid, lane); fflush(stdout);
  say("start", ioctl(fd, ACRN_IOCTL_START_VM, 0));
  while (served < want) { if (ioctl(fd, ACRN_IOCTL_ATTACH_IOREQ_CLIENT, 0)) { perror("attach"); return 5; } serve(); }
  printf("served %u bad %u first\n", served, bad); fflush(stdout);
  if (argc > 3 && strcmp(argv[3], "scribble") == 0) {
    /* a hostile program: every byte of its lane page set, then calls as usual */
    FILE *m = fopen("/proc/self/maps", "r"); unsigned long lo = 0, hi = 0;
    while (fgets(line, sizeof line, m)) if (strstr(line, "hsm-shim-lane")) sscanf(line, "%lx-%lx", &lo, &hi);
    fclose(m);
    if (lo) { memset((void *)lo, 0xff, hi - lo); ((unsigned *)lo)[56] = 0x12345678; /* calls_head */ }
    /* and its file cut to nothing under hsmd's mapping, if the seal let it */
    char file[64]; snprintf(file, sizeof file, "/proc/self/map_files/%lx-%lx", lo, hi);
    int lf = open(file, O_RDWR);
    say("truncate-lane", lf < 0 ? lf : ftruncate(lf, 0));
    say("attach-scribbled", ioctl(fd, ACRN_IOCTL_ATTACH_IOREQ_CLIENT, 0));
    serve();
    struct acrn_ioreq_notify n = { .vmid = (uint16_t)vmid, .vcpu = 9 };
    say("notify-scribbled", ioctl(fd, ACRN_IOCTL_NOTIFY_REQUEST_FINISH, &n));
    say("clear-scribbled", ioctl(fd, ACRN_IOCTL_CLEAR_VM_IOREQ, 0));
    say("pause", ioctl(fd, ACRN_IOCTL_PAUSE_VM, 0));
    say("destroy", ioctl(fd, ACRN_IOCTL_DESTROY_VM, 0));
    return 0;
  }
  /* the guest's next request is out, unanswered */
  wait_line("go");
  pthread_t t; pthread_create(&t, NULL, stdin_main, NULL);
  while (!atomic_load(&stop)) { if (ioctl(fd, ACRN_IOCTL_ATTACH_IOREQ_CLIENT, 0)) { perror("attach"); return 5; } serve(); }
  say("pause", ioctl(fd, ACRN_IOCTL_PAUSE_VM, 0));
  /* a request the guest made before it stopped is answered: then nothing is pending */
  serve();
  printf("served %u bad %u\n", served, bad); fflush(stdout);
  pthread_t a; pthread_create(&a, NULL, attach_main, NULL);
  usleep(300000);
  say("destroy-client", ioctl(fd, ACRN_IOCTL_DESTROY_IOREQ_CLIENT, 0));
  pthread_join(a, NULL);
  say("destroy", ioctl(fd, ACRN_IOCTL_DESTROY_VM, 0));
  /* every ioeventfd signal came before DESTROY_VM's reply */
  uint64_t k = 0;
  if (read(kicks, &k, 8) != 8) k = 0;
  printf("kicks %llu\n", (unsigned long long)k); fflush(stdout);
  return 0;
}
`

// Real mode at GPA 0: read port 0x70, write what it read to 0x71, and to 0x72 (the
// program's ioeventfd, which the lane must leave to it), for ever.
const GUEST = `
.code16
1:	in $0x70, %al
	out %al, $0x71
	out %al, $0x72
	jmp 1b
`

const dir = mkdtempSync(join(tmpdir(), 'hsmctl-lane-'))
const probe = join(dir, 'lane-probe')
const payload = join(dir, 'guest.bin')
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const unavailable = helperUnavailable ?? guestCodeUnavailable('the lane tests')

describe.skipIf(unavailable)('the lane', () => {
  beforeAll(() => {
    buildHelper()
    writeFileSync(join(dir, 'lane-probe.c'), PROBE)
    const cc = spawnSync(
      'cc',
      ['-O2', '-Wall', '-pthread', '-o', probe, join(dir, 'lane-probe.c')],
      {
        encoding: 'utf8',
      },
    )
    expect(cc.status, cc.stderr).toBe(0)
    writeFileSync(payload, assemble(GUEST))
  }, 120_000)

  for (const lane of [true, false]) {
    it(`serves a guest's port I/O ${lane ? 'through the lane' : 'over the ring (HSM_SHIM_LANE=0)'}, with the model's rules`, async () => {
      const platform = createSimPlatform()
      const server = await SimServer.listen(join(dir, `lane-${lane}.sock`), { platform })
      // What the trace sees: every request, with the value a read got.
      const seen: { port: number; write: boolean; value: number; latency: number }[] = []
      platform.observeCompletions((_vm, vcpu, slot, base, value, timing) => {
        seen.push({
          port: slot.getUint32(base + REQ_ADDRESS, true),
          write: slot.getUint32(base + REQ_DIRECTION, true) === 1,
          value:
            slot.getUint32(base + REQ_DIRECTION, true) === 1
              ? slot.getUint32(base + REQ_VALUE, true)
              : Number(value),
          latency: timing ? timing.done - timing.since : performance.now() - vcpu.busySince,
        })
      })
      try {
        const p = new Probe(
          spawn(probe, [payload, String(SERVED)], {
            env: {
              ...process.env,
              LD_PRELOAD: shimPath(),
              HSM_SHIM_SOCKET: server.path,
              HSM_SHIM_LANE: lane ? '1' : '0',
            },
          }),
        )
        const vmid = Number((await p.waitFor(/vmid (\d+) lane (\d)/))[1])
        expect(p.out).toContain(`lane ${lane ? 1 : 0}`)
        await p.waitFor(/served (\d+) bad (\d+) first/)
        // Every IN got the program's value and every OUT to 0x71 carried it back; the
        // writes to 0x72 went to the ioeventfd, never to the program (below).
        expect(p.out).toContain(`served ${SERVED} bad 0 first`)
        // The guest's next request is out, unanswered: the vCPU is busy for guest access.
        const exec = () => platform.inspect.vcpuExecution(vmid)[0]?.state
        for (let i = 0; i < 100 && exec() !== 'waiting'; i++)
          await new Promise((r) => setTimeout(r, 20))
        expect(exec()).toBe('waiting')
        const read70 = () =>
          platform.guestAccess({ vmid, vcpu: 0, type: 'pio', dir: 'read', addr: 0x70, size: 1 })
        await expect(read70()).rejects.toMatchObject({ reason: 'busy' })
        p.say('go')
        if (lane) {
          // A request the model sends (between two guest instructions) reaches the program
          // the same way, and its NOTIFY completes it over the ring. (Without the lane the
          // vCPU of this loop is nearly always the model's, busy with its next exit.)
          let got: bigint | undefined
          // Busy while the program has not answered the guest's latest request: try again.
          for (let deadline = Date.now() + 20_000; got === undefined && Date.now() < deadline;) {
            got = await read70().catch((e: { reason?: string }) => {
              if (e.reason !== 'busy') throw e
              return undefined
            })
            if (got === undefined) await new Promise((r) => setTimeout(r, 2))
          }
          expect(got).toBeGreaterThanOrEqual(0x40n)
          expect(got).toBeLessThan(0x80n)
        } else {
          await new Promise((r) => setTimeout(r, 100))
        }
        p.say('stop')
        await p.waitFor(/kicks \d+/)
        // DESTROY_IOREQ_CLIENT wakes an ATTACH that sleeps with nothing pending: ENODEV.
        expect(p.out).toContain('attach-during-destroy -1 ENODEV')
        expect(p.out).toContain('destroy-client 0 OK')
        expect(await p.exited).toBe(0)
        const served = Number([...p.out.matchAll(/served (\d+) bad 0\n/g)].at(-1)![1])
        // The trace saw each request the program served, in order, with its value.
        for (let i = 0; i < 100 && seen.filter((s) => s.port !== 0x72).length < served; i++)
          await new Promise((r) => setTimeout(r, 20))
        const io = seen.filter((s) => s.port !== 0x72)
        expect(io.length).toBe(served)
        for (const s of io) {
          expect(s.port === 0x70 ? !s.write : s.port === 0x71 && s.write).toBe(true)
          expect(s.value).toBeGreaterThanOrEqual(0x40)
          expect(s.latency).toBeGreaterThanOrEqual(0)
        }
        const ins = io.filter((s) => s.port === 0x70)
        const outs = io.filter((s) => s.port === 0x71)
        expect(outs.every((o) => ins.some((i) => i.value === o.value))).toBe(true)
        // Each write to 0x72 signalled the program's eventfd: the ioeventfd's, not the lane's.
        const kicks = Number(p.out.match(/kicks (\d+)/)![1])
        expect(kicks).toBeGreaterThanOrEqual(SERVED / 2 - 1)
        expect(kicks).toBe(seen.filter((s) => s.port === 0x72).length)
      } finally {
        await server.close()
      }
    }, 90_000)
  }

  // No shim: the model's own calls, and a lane page made here. An ATTACH that came over the
  // ring before the lane was on sleeps in the model: a request the vCPU thread dispatches
  // through the lane must wake it, and the model's NOTIFY of that request must let the
  // vCPU thread finish it.
  it("wakes the model's own ATTACH waiters, and the model's NOTIFY finishes a lane request", async () => {
    const platform = createSimPlatform()
    const proc = platform.spawn()
    const fd = await proc.open('/dev/acrn_hsm')
    const page = await proc.mmap(4096)
    const creation = vmCreation({ cpu_affinity: 0b10n, ioreq_buf: page })
    await proc.ioctl(fd, Ioctl.CREATE_VM, creation)
    const vmid = new DataView(creation.buffer).getUint16(0, true)
    // 1 MiB of RAM at GPA 0 holding the guest, entered in real mode at 0.
    const ram = await proc.mmap(1 << 20)
    await proc.write(ram, assemble(GUEST))
    const memmap = new Uint8Array(32)
    const mm = new DataView(memmap.buffer)
    mm.setUint32(4, 7, true) // RWX
    mm.setBigUint64(16, ram, true)
    mm.setBigUint64(24, 1n << 20n, true)
    await proc.ioctl(fd, Ioctl.SET_MEMSEG, memmap)
    const regs = new Uint8Array(acrn_vcpu_regs.size)
    const r = new DataView(regs.buffer)
    r.setBigUint64(offsetOf(acrn_vcpu_regs, 'vcpu_regs.cr0'), 0x30n, true)
    r.setUint16(offsetOf(acrn_vcpu_regs, 'vcpu_regs.cs_ar'), 0x9f, true)
    r.setUint16(offsetOf(acrn_vcpu_regs, 'vcpu_regs.cs_sel'), 0xf000, true)
    r.setUint32(offsetOf(acrn_vcpu_regs, 'vcpu_regs.cs_limit'), 0xffff, true)
    await proc.ioctl(fd, Ioctl.SET_VCPU_REGS, regs)
    await proc.ioctl(fd, Ioctl.CREATE_IOREQ_CLIENT)
    let attached: number | undefined
    const attach = proc.ioctl(fd, Ioctl.ATTACH_IOREQ_CLIENT).then((ret) => (attached = ret))
    await platform.settle()
    expect(attached).toBeUndefined()
    const backing = allocateBacking(LANE_SIZE)
    const bytes = new Uint8Array(backing.buffer)
    new DataView(bytes.buffer).setUint32(0, LANE_MAGIC, true)
    new DataView(bytes.buffer).setUint32(4, LANE_VERSION, true)
    const lane = proc.attachLane(fd, bytes)
    expect(typeof lane).toBe('object')
    expect(proc.hsmState(fd)?.defaultClient).toEqual({ pending: 0, lane: true })
    await proc.ioctl(fd, Ioctl.START_VM)
    // The guest's IN from 0x70 went out through the lane, and woke the model's waiter.
    await expect(attach).resolves.toBe(0)
    const slots = new Int32Array(
      proc.view(page, 4096).buffer,
      proc.view(page, 4096).byteOffset,
      1024,
    )
    expect(Atomics.load(slots, processedIndex(0))).toBe(IoreqState.PROCESSING)
    expect(proc.hsmState(fd)?.defaultClient?.pending).toBe(1)
    expect(platform.inspect.vcpuExecution(vmid)[0]?.state).toBe('waiting')
    // Answer 0x55 and NOTIFY through the model: the vCPU thread finishes it, the guest
    // echoes 0x55 to port 0x71 next, through the lane again.
    new DataView(proc.view(page, 4096).buffer, proc.view(page, 4096).byteOffset).setUint32(
      REQ_VALUE,
      0x55,
      true,
    )
    const notify = new Uint8Array(8)
    new DataView(notify.buffer).setUint16(0, vmid, true)
    expect(await proc.ioctl(fd, Ioctl.NOTIFY_REQUEST_FINISH, notify)).toBe(0)
    const view = () => new DataView(proc.view(page, 4096).buffer, proc.view(page, 4096).byteOffset)
    for (let i = 0; i < 200 && view().getUint32(REQ_ADDRESS, true) !== 0x71; i++)
      await new Promise((r) => setTimeout(r, 10))
    expect(view().getUint32(REQ_ADDRESS, true)).toBe(0x71)
    expect(view().getUint32(REQ_VALUE, true)).toBe(0x55)
    expect(await proc.ioctl(fd, Ioctl.ATTACH_IOREQ_CLIENT)).toBe(0)
    await proc.ioctl(fd, Ioctl.PAUSE_VM)
    await proc.ioctl(fd, Ioctl.DESTROY_VM)
    await proc.exit()
  }, 60_000)

  // The page is the program's: one that sets every byte of it confuses its own VM only.
  // hsmd keeps to its own words, bounds what it reads back, and serves the next program.
  it('survives a program that scribbles on its lane page', async () => {
    const platform = createSimPlatform()
    const calls: number[] = []
    const server = await SimServer.listen(join(dir, 'lane-scribble.sock'), {
      platform,
      onIoctl: (call) => calls.push(call.request),
    })
    try {
      const spawnProbe = (...args: string[]) =>
        new Probe(
          spawn(probe, [payload, String(SERVED), ...args], {
            env: { ...process.env, LD_PRELOAD: shimPath(), HSM_SHIM_SOCKET: server.path },
          }),
        )
      const hostile = spawnProbe('scribble')
      await hostile.waitFor(/lane 1/)
      await hostile.waitFor(/destroy -?\d+/)
      expect(await hostile.exited).toBe(0)
      // Its calls went over the ring (the lane no longer says ON) and were answered.
      // The file hsmd maps is sealed against shrinking: no SIGBUS for hsmd.
      expect(hostile.out).toContain('truncate-lane -1 EPERM')
      expect(hostile.out).toContain('attach-scribbled 0 OK')
      expect(hostile.out).toContain('notify-scribbled -1 EINVAL')
      expect(hostile.out).toContain('destroy 0 OK')
      expect(platform.inspect.vms()).toEqual([])
      // The log of calls the lane answered is read within its bounds (1024 records at most),
      // whatever its head says: garbage requests, which the ioctl log shows as unknown.
      const garbage = calls.filter((request) => request === 0xffffffff).length
      expect(garbage).toBeGreaterThan(0)
      expect(garbage).toBeLessThanOrEqual(1024)
      // The next program is served through a lane of its own, as if nothing happened.
      const next = spawnProbe()
      await next.waitFor(/served (\d+) bad (\d+) first/)
      expect(next.out).toContain(`lane 1`)
      expect(next.out).toContain(`served ${SERVED} bad 0 first`)
      next.child.kill('SIGKILL')
      await next.exited
    } finally {
      await server.close()
    }
  }, 60_000)
})
