// Linux work items and workqueues, single-threaded: queued work runs in a microtask, in
// queue order (scheduled with a resolved promise: queueMicrotask would create an async
// resource per call, which costs more than the dispatch itself). Queueing a work item that is already queued does nothing, so several
// upcalls before the dispatcher runs collapse into one run (§4.3 step 2).

export class Work {
  queued = false
  constructor(readonly fn: () => void) {}
}

const RESOLVED = Promise.resolve()

export class WorkQueue {
  private readonly items: Work[] = []
  private scheduled = false
  private destroyed = false

  constructor(readonly name: string) {}

  /** queue_work: false if the item was already queued. */
  queue(work: Work): boolean {
    if (work.queued || this.destroyed) return false
    work.queued = true
    this.items.push(work)
    if (!this.scheduled) {
      this.scheduled = true
      void RESOLVED.then(this.run)
    }
    return true
  }

  private readonly run = (): void => {
    this.scheduled = false
    this.drain()
  }

  /** flush_workqueue: run everything queued, now. */
  flush(): void {
    this.drain()
  }

  /** destroy_workqueue: flush, then accept nothing more. */
  destroy(): void {
    this.drain()
    this.destroyed = true
  }

  private drain(): void {
    let failure: unknown
    let failed = false
    while (this.items.length > 0) {
      const work = this.items.shift()!
      work.queued = false
      try {
        work.fn()
      } catch (err) {
        if (!failed) failure = err
        failed = true
      }
    }
    if (failed) throw failure
  }
}
