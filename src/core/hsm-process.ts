// The one syscall-shaped interface everything above the device talks to (ARCHITECTURE.md,
// "Contracts"). Both backends implement it: the simulation (core/sim) and the native
// helper client (core/native). A failed call rejects with HsmError (errno, code, request).

/**
 * What an ioctl's pointer argument points at, or the value itself:
 * - Uint8Array: the user memory at the pointer; read-back ioctls (CREATE_VM,
 *   PM_GET_CPU_STATE) update it in place;
 * - bigint: ioctls that take a value in place of the pointer (SET_IRQLINE, VM_INTR_MONITOR);
 *   for a struct ioctl, the address of the struct in this process's memory (from `mmap`),
 *   which the call reads and writes there, exactly as the kernel does with a user pointer
 *   (so a bad address is EFAULT, not a crash);
 * - undefined: ioctls whose argument is ignored.
 */
export type IoctlArg = Uint8Array | bigint | undefined

export interface HsmProcess {
  /** open(2); the simulated platform knows /dev/acrn_hsm only. */
  open(path: string): Promise<number>
  /** ioctl(2) with a raw request number; resolves with the (non-negative) return value. */
  ioctl(fd: number, request: number, arg?: IoctlArg): Promise<number>
  /** An anonymous, zeroed, page-aligned private mapping of `length` bytes; its address. */
  mmap(length: number): Promise<bigint>
  /**
   * munmap(2) of memory from `mmap`: the pages of [address, address + length) go; pages a
   * VM pinned stay the kernel's until it lets go of them (§3.4).
   */
  munmap(address: bigint, length: number): Promise<void>
  /** Read the process's own memory (inside its mappings). */
  read(address: bigint, length: number): Promise<Uint8Array>
  /** Write the process's own memory (inside its mappings). */
  write(address: bigint, bytes: Uint8Array): Promise<void>
  /** eventfd(2) with EFD_NONBLOCK. */
  eventfd(initval?: number): Promise<number>
  /** Read and reset the counter; rejects with EAGAIN when it is zero. */
  eventfdRead(fd: number): Promise<bigint>
  /** Add `n` to the counter (waking irqfds and pollers). */
  eventfdWrite(fd: number, n: bigint | number): Promise<void>
  /** close(2); the last close of an HSM fd releases its VM (spec §1.5). */
  close(fd: number): Promise<void>
}
