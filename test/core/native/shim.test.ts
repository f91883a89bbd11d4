// libhsm-shim.so under a small C program of our own (compiled here), step by step against
// a SimServer in this process: what crosses by fd (dup, F_DUPFD, close, fork, eventfds for
// irqfd and ioeventfd) and a signal during ATTACH (helper/SHIM.md). The conformance suite
// covers the ioctls themselves, through hsm-helper.

import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { shimLoadPath, shimPath } from '../../../src/core/native/preflight.js'
import { SimServer } from '../../../src/core/native/sim-server.js'
import { createSimPlatform } from '../../../src/index.js'
import { buildHelper, helperUnavailable, Probe } from './support.js'

const PROBE = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/acrn.h>

static struct acrn_io_request_buffer page __attribute__((aligned(4096)));
static void step(const char *what) { printf("%s\n", what); fflush(stdout); char l[64]; if (!fgets(l, sizeof l, stdin)) exit(3); }
static void say(const char *what, int r) { printf("%s %d %s\n", what, r, r < 0 ? strerrorname_np(errno) : "OK"); fflush(stdout); }
static void on_usr1(int s) { (void)s; }

int main(void) {
  int fd = open("/dev/acrn_hsm", O_RDWR | O_CLOEXEC);
  if (fd < 0) { perror("open"); return 1; }
  struct acrn_vm_creation c; memset(&c, 0, sizeof c);
  c.ioreq_buf = (unsigned long)&page; c.cpu_affinity = 2;
  say("create", ioctl(fd, ACRN_IOCTL_CREATE_VM, &c));
  printf("vmid %u\n", c.vmid);
  int fd2 = dup(fd), fd3 = fcntl(fd, F_DUPFD_CLOEXEC, 10);
  close(fd);
  say("start-through-dup", ioctl(fd2, ACRN_IOCTL_START_VM, 0));
  say("closed-fd", ioctl(fd, ACRN_IOCTL_PAUSE_VM, 0));
  say("through-fdupfd", ioctl(fd3, ACRN_IOCTL_CLEAR_VM_IOREQ, 0));

  int efd = eventfd(0, 0);
  struct acrn_irqfd irq; memset(&irq, 0, sizeof irq);
  irq.fd = efd; irq.msi.msi_addr = 0xfee00000; irq.msi.msi_data = 0x41;
  say("irqfd", ioctl(fd2, ACRN_IOCTL_IRQFD, &irq));
  uint64_t one = 1;
  say("write", (int)write(efd, &one, 8));
  say("eventfd_write", eventfd_write(efd, 2));
  struct acrn_ioeventfd kick; memset(&kick, 0, sizeof kick);
  kick.fd = efd; kick.flags = ACRN_IOEVENTFD_FLAG_PIO; kick.addr = 0x10; kick.len = 1;
  say("ioeventfd-on-irqfd", ioctl(fd2, ACRN_IOCTL_IOEVENTFD, &kick));
  int counter = eventfd(0, EFD_NONBLOCK);
  struct acrn_ioeventfd io; memset(&io, 0, sizeof io);
  io.fd = counter; io.flags = ACRN_IOEVENTFD_FLAG_PIO; io.addr = 0x510; io.len = 2;
  say("ioeventfd", ioctl(fd2, ACRN_IOCTL_IOEVENTFD, &io));
  step("ready-for-kicks");
  uint64_t n = 0;
  say("count", (int)read(counter, &n, 8));
  printf("counter %llu\n", (unsigned long long)n);
  close(efd);
  step("closed-irqfd-eventfd");

  pid_t child = fork();
  if (child == 0) {
    int r = ioctl(fd2, ACRN_IOCTL_PAUSE_VM, 0);
    printf("child %d %s\n", r, r < 0 ? strerrorname_np(errno) : "OK");
    fflush(stdout);
    _exit(0);
  }
  waitpid(child, NULL, 0);
  say("parent-pause", ioctl(fd2, ACRN_IOCTL_PAUSE_VM, 0));

  struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  say("client", ioctl(fd2, ACRN_IOCTL_CREATE_IOREQ_CLIENT, 0));
  printf("attach-wait\n"); fflush(stdout);
  say("attach", ioctl(fd2, ACRN_IOCTL_ATTACH_IOREQ_CLIENT, 0));
  say("destroy", ioctl(fd3, ACRN_IOCTL_DESTROY_VM, 0));
  close(fd2);
  close(fd3);
  printf("done\n");
  return 0;
}
`

// The RAM a program hands to SET_MEMSEG is the guest's RAM (§3.4 B): `memfd` maps a memfd
// of its own MAP_SHARED (as acrn-dm does), `memalign` takes private heap memory (as
// vm-sample does). Then, on stdin: `w OFF VAL` writes a byte, `r OFF` reads one.
const RAM_PROBE = String.raw`
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/acrn.h>

static struct acrn_io_request_buffer page __attribute__((aligned(4096)));

int main(int argc, char **argv) {
  size_t len = 1 << 20;
  uint8_t *ram;
  if (argc > 1 && strcmp(argv[1], "memfd") == 0) {
    int m = memfd_create("guest-ram", MFD_CLOEXEC);
    if (m < 0 || ftruncate(m, len) || (ram = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0)) == MAP_FAILED) return 1;
  } else if (posix_memalign((void **)&ram, 4096, len)) return 1;
  /* written before SET_MEMSEG: the guest must find these bytes */
  ram[0x1000] = 0x11; ram[0x1001] = 0x22; ram[len - 1] = 0x33;
  int fd = open("/dev/acrn_hsm", O_RDWR | O_CLOEXEC);
  struct acrn_vm_creation c; memset(&c, 0, sizeof c);
  c.ioreq_buf = (unsigned long)&page; c.cpu_affinity = 2;
  if (fd < 0 || ioctl(fd, ACRN_IOCTL_CREATE_VM, &c)) { perror("create"); return 1; }
  struct acrn_vm_memmap mm; memset(&mm, 0, sizeof mm);
  mm.type = ACRN_MEMMAP_RAM; mm.user_vm_pa = 0; mm.vma_base = (unsigned long)ram; mm.len = len;
  mm.attr = ACRN_MEM_ACCESS_RWX;
  if (ioctl(fd, ACRN_IOCTL_SET_MEMSEG, &mm)) { perror("memseg"); return 1; }
  if (ioctl(fd, ACRN_IOCTL_START_VM, 0)) { perror("start"); return 1; }
  /* the same addresses, now a shared mapping of one file */
  char line[512]; FILE *maps = fopen("/proc/self/maps", "r");
  while (fgets(line, sizeof line, maps)) {
    unsigned long lo, hi; char perms[8];
    if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && lo <= (unsigned long)ram && (unsigned long)ram < hi)
      printf("mapping %s %s", perms, strchr(line, '/') ? strchr(line, '/') : "anonymous\n");
    if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && lo <= (unsigned long)&page && (unsigned long)&page < hi)
      printf("ioreq page %s %s", perms, strchr(line, '/') ? strchr(line, '/') : "anonymous\n");
  }
  fclose(maps);
  printf("vmid %u ready %d\n", c.vmid, ram[0x1000] == 0x11 && ram[0x1001] == 0x22 && ram[len - 1] == 0x33);
  fflush(stdout);
  char cmd[64];
  while (fgets(cmd, sizeof cmd, stdin)) {
    unsigned long off, val;
    if (sscanf(cmd, "w %lx %lx", &off, &val) == 2) { ram[off] = (uint8_t)val; printf("wrote %lx\n", off); }
    else if (sscanf(cmd, "r %lx", &off) == 1) printf("byte %lx %x\n", off, ram[off]);
    else if (cmd[0] == 's') printf("slot type %u address %llx\n", page.req_slot[0].type, (unsigned long long)page.req_slot[0].reqs.pio_request.address);
    else break;
    fflush(stdout);
  }
  ioctl(fd, ACRN_IOCTL_PAUSE_VM, 0);
  return ioctl(fd, ACRN_IOCTL_DESTROY_VM, 0) ? 2 : 0;
}
`

const dir = mkdtempSync(join(tmpdir(), 'hsmctl-shim-'))
const probe = join(dir, 'probe')
const ramProbe = join(dir, 'ram-probe')
// The conformance project runs this file a second time over the socket alone.
const TRANSPORT = process.env.HSMCTL_TEST_SHIM_TRANSPORT === 'socket' ? 'socket' : 'auto'
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe.skipIf(helperUnavailable)('libhsm-shim.so', () => {
  beforeAll(() => {
    buildHelper()
    writeFileSync(join(dir, 'probe.c'), PROBE)
    writeFileSync(join(dir, 'ram-probe.c'), RAM_PROBE)
    for (const [out, src] of [
      [probe, 'probe.c'],
      [ramProbe, 'ram-probe.c'],
    ]) {
      const cc = spawnSync('cc', ['-O2', '-Wall', '-o', out!, join(dir, src!)], {
        encoding: 'utf8',
      })
      expect(cc.status, cc.stderr).toBe(0)
    }
  }, 120_000)

  it('is transparent without HSM_SHIM_SOCKET, and says so when the server is not there', () => {
    const cat = spawnSync('sh', ['-c', 'cat /dev/acrn_hsm; echo status $?'], {
      env: { ...process.env, LD_PRELOAD: shimPath() },
      encoding: 'utf8',
    })
    expect(cat.stderr).toMatch(/No such file or directory/)
    expect(cat.stdout).toBe('status 1\n')
    const absent = spawnSync(probe, [], {
      env: { ...process.env, LD_PRELOAD: shimPath(), HSM_SHIM_SOCKET: join(dir, 'nobody.sock') },
      encoding: 'utf8',
    })
    expect(absent.status).toBe(1)
    expect(absent.stderr).toMatch(
      /hsm-shim: cannot connect to .*nobody\.sock .*is `hsmctl sim serve --socket/,
    )
  })

  it('carries dup, F_DUPFD, close, fork, eventfds and signals across', async () => {
    const platform = createSimPlatform()
    const server = await SimServer.listen(join(dir, 'p.sock'), { platform })
    try {
      const p = new Probe(
        spawn(probe, [], {
          env: {
            ...process.env,
            LD_PRELOAD: shimPath(),
            HSM_SHIM_SOCKET: server.path,
            HSM_SHIM_TRANSPORT: TRANSPORT,
          },
        }),
      )
      const vmid = Number((await p.waitFor(/vmid (\d+)/))[1])
      await p.waitFor(/ready-for-kicks/)
      expect(p.out).toContain('create 0 OK')
      // fds that share the open file share the VM (§1.4); the closed one is gone.
      expect(p.out).toContain('start-through-dup 0 OK')
      expect(p.out).toContain('closed-fd -1 EBADF')
      expect(p.out).toContain('through-fdupfd 0 OK')
      expect(server.sessions()).toEqual([
        expect.objectContaining({ pid: p.child.pid, program: 'probe', shim: true, vmids: [vmid] }),
      ])
      // Each write to the irqfd's eventfd injected one MSI before write returned (§6.3).
      expect(p.out).toMatch(/irqfd 0 OK\nwrite 8 OK\neventfd_write 0 OK/)
      const msis = () => platform.inspect.msi(vmid).find((d) => d.vector === 0x41)?.count ?? 0
      expect(msis()).toBe(2)
      // ioeventfd signals reach the process's eventfd (§5.5)...
      for (let i = 0; i < 3; i++)
        await platform.guestAccess({
          vmid,
          vcpu: 0,
          type: 'pio',
          dir: 'write',
          addr: 0x510,
          size: 2,
          value: i,
        })
      // ...and an ioeventfd on the irqfd's eventfd injects through it.
      await platform.guestAccess({
        vmid,
        vcpu: 0,
        type: 'pio',
        dir: 'write',
        addr: 0x10,
        size: 1,
        value: 0,
      })
      expect(msis()).toBe(3)
      await server.sync()
      p.go()
      await p.waitFor(/closed-irqfd-eventfd/)
      expect(p.out).toMatch(/count 8 OK\ncounter 3/)
      // Its last fd closed: the irqfd is gone (§6.4); the ioeventfd still signals nobody.
      await server.sync()
      await platform.settle()
      await platform.guestAccess({
        vmid,
        vcpu: 0,
        type: 'pio',
        dir: 'write',
        addr: 0x10,
        size: 1,
        value: 0,
      })
      expect(msis()).toBe(3)
      p.go()
      // A forked child does not share the parent's connection: its copy is plain /dev/null.
      await p.waitFor(/parent-pause/)
      expect(p.out).toContain('child -1 ENOTTY')
      expect(p.out).toContain('parent-pause 0 OK')
      // A signal ends ATTACH's wait with 0, never EINTR (§4.7).
      await p.waitFor(/attach-wait/)
      for (let i = 0; i < 50 && !/attach /.test(p.out); i++) {
        await new Promise((r) => setTimeout(r, 100))
        p.child.kill('SIGUSR1')
      }
      await p.waitFor(/done/)
      expect(p.out).toContain('attach 0 OK')
      expect(p.out).toContain('destroy 0 OK')
      expect(await p.exited).toBe(0)
      expect(platform.inspect.vms()).toEqual([])
    } finally {
      await server.close()
    }
  }, 60_000)

  // No SYNC anywhere below: a byte is where the other side reads it the moment it is written.
  for (const [mode, mapping] of [
    // the program's own file, mapped by hsmd as it is
    ['memfd', /^mapping rw-s \/memfd:guest-ram \(deleted\)$/m],
    // private memory, turned into a shared mapping in place (same address, same bytes)
    ['memalign', /^mapping rw-s \/memfd:hsm-shim-ram \(deleted\)$/m],
  ] as const) {
    it(`shares RAM and the ioreq page, no copy: a ${mode} buffer (§3.4 B, §2.2)`, async () => {
      const platform = createSimPlatform()
      const server = await SimServer.listen(join(dir, `ram-${mode}.sock`), { platform })
      try {
        const p = new Probe(
          spawn(ramProbe, [mode], {
            env: {
              ...process.env,
              LD_PRELOAD: shimPath(),
              HSM_SHIM_SOCKET: server.path,
              HSM_SHIM_TRANSPORT: TRANSPORT,
            },
          }),
        )
        const vmid = Number((await p.waitFor(/vmid (\d+) ready 1/))[1])
        expect(p.out).toMatch(mapping)
        const guest = (dir: 'read' | 'write', addr: number, size: number, value = 0) =>
          platform.guestAccess({
            vmid,
            vcpu: 0,
            type: 'mmio',
            dir,
            addr: BigInt(addr),
            size,
            value: BigInt(value),
          })
        // what the program wrote before SET_MEMSEG is the guest's RAM
        expect(await guest('read', 0x1000, 2)).toBe(0x2211n)
        expect(await guest('read', 0xfffff, 1)).toBe(0x33n)
        // the program writes, the guest reads at once...
        for (const [off, val] of [
          [0x2345, 0x5a],
          [0x80000, 0xc3],
        ] as const) {
          p.child.stdin.write(`w ${off.toString(16)} ${val.toString(16)}\n`)
          await p.waitFor(new RegExp(`wrote ${off.toString(16)}\\n`))
          expect(await guest('read', off, 1)).toBe(BigInt(val))
        }
        // ...and the other way round
        await guest('write', 0x3456, 4, 0xa5b6c7d8)
        p.child.stdin.write('r 3456\nr 3459\n')
        await p.waitFor(/byte 3459 a5\n/)
        expect(p.out).toContain('byte 3456 d8\n')
        // The ioreq page the kernel pins is shared the same way (§2.2): the request the
        // hypervisor puts in vCPU 0's slot is there at once, the program making no call.
        expect(p.out).toMatch(/^ioreq page rw-s \/memfd:hsm-shim-ram \(deleted\)$/m)
        // (no client: it stays PENDING, §4.4, and ends with the VM)
        void platform
          .guestAccess({
            vmid,
            vcpu: 0,
            type: 'pio',
            dir: 'read',
            addr: 0x1234n,
            size: 1,
            value: 0n,
          })
          .catch(() => {})
        p.child.stdin.write('s\n')
        await p.waitFor(/slot type (\d+) address 1234\n/)
        p.child.stdin.end()
        expect(await p.exited).toBe(0)
      } finally {
        await server.close()
      }
    }, 60_000)
  }
})

// helper/shim-load.c, the bench's load generator: many threads, one connection. Every one
// of the calls must reach the simulation and come back (the waiter table matches replies
// to threads by id), and the VM must go with the fd.
describe.skipIf(helperUnavailable)('shim-load (many threads through one connection)', () => {
  beforeAll(() => buildHelper())

  it('16 threads × 200 NOTIFYs all succeed, and closing the fd releases the VM', async () => {
    const platform = createSimPlatform()
    const server = await SimServer.listen(join(dir, 'load.sock'), { platform })
    try {
      const child = spawn(shimLoadPath(), ['16', '200'], {
        env: { ...process.env, LD_PRELOAD: shimPath(), HSM_SHIM_SOCKET: server.path },
      })
      let out = ''
      let err = ''
      child.stdout.on('data', (d: Buffer) => (out += d.toString()))
      child.stderr.on('data', (d: Buffer) => (err += d.toString()))
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
      expect(err).toBe('')
      expect(code).toBe(0)
      expect(out).toMatch(/^calls 3200 seconds [\d.]+ per_second \d+ switches_per_call [\d.]+\n$/)
      // the program has exited; its connection's end reaches the server when it reaches it
      await vi.waitFor(() => expect(platform.inspect.vms()).toEqual([]), { timeout: 10_000 })
    } finally {
      await server.close()
    }
  }, 60_000)
})
