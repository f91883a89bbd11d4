// One operation at a time per VM name: hsmd serves many clients, and an operation is
// several awaited ioctls. Two creates of one name, or a destroy inside a create, would
// otherwise interleave: the loser would see the hypervisor's EINVAL for a name it still
// holds, EBADF from an fd another call closed, or "no VM named" after its own create
// succeeded. Operations on different names still run side by side.

export class NameLock {
  private readonly tails = new Map<string, Promise<unknown>>()

  /** Run `operation` once every earlier operation on `name` has settled. */
  run<T>(name: string, operation: () => T | Promise<T>): Promise<T> {
    const before = this.tails.get(name) ?? Promise.resolve()
    const result = before.then(() => operation())
    const tail = result.catch(() => {})
    this.tails.set(name, tail)
    // the last one out forgets the name: the map holds only names in use
    void tail.then(() => {
      if (this.tails.get(name) === tail) this.tails.delete(name)
    })
    return result
  }

  /** Names with an operation running or queued (for tests and `daemon status`). */
  get busy(): number {
    return this.tails.size
  }
}
