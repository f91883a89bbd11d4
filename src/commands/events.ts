import { Flags } from '@oclif/core'
import { DaemonCommand } from '../cli/daemon-command.js'
import { currentAbortSignal } from '../cli/shell/host.js'
import type { EventsReply } from '../core/daemon/event-methods.js'
import {
  EVENT_TYPE_GROUPS,
  EVENT_TYPES,
  expandEventType,
  type EventType,
} from '../core/daemon/events.js'
import { UsageError } from '../core/errors.js'

/** How long one read waits on the daemon before asking again (it answers at the first event). */
const WAIT_MS = 10_000

const TYPE_WORDS = [...EVENT_TYPES, ...Object.keys(EVENT_TYPE_GROUPS)]

export default class Events extends DaemonCommand {
  static override summary = 'Print VM, device and daemon events as they happen, until Ctrl-C.'

  static override description = `One line per change, in the order hsmd made or saw it: time, type, action, VM, and what
identifies it (vmid, owner, a device's slot, an eventfd's id and address). --json prints
one JSON object a line instead: {seq, time, type, action, vm, vmid, attributes}; seq
numbers the daemon's events in order, on across restarts.

The types and their actions: daemon (started, stopping, stopped); vm (created, started,
paused, reset, destroyed: hsmd's own VMs, and those of programs under the device shim,
owner "outside process"); ioreq-client (created, destroyed: the default client, made and
gone with its VM); vdev (created, destroyed); mmiodev and ptdev (assigned, deassigned);
ioeventfd and irqfd (added, removed); acrn-dm (appeared, gone: an acrn-dm process, found
by its monitor socket). --type also takes device (ioreq-client, vdev, mmiodev, ptdev)
and eventfd (ioeventfd, irqfd).

hsmd looks for acrn-dm processes and shimmed programs' VMs when the monitor-socket
directory changes and every 0.5 s: one that comes and goes faster may not be seen. Such
a VM's created event says the state it was first seen in; the states it is seen in later
are events too.

--since replays the events hsmd kept (the last 4096, and the previous daemon's stop)
from that time on, then follows. When hsmd stops, the command prints its last events
(daemon stopped) and exits 0; if the connection is lost otherwise it exits 5.`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --since 10m --vm demo',
    '<%= config.bin %> <%= command.id %> --type vm --type eventfd --json',
    '<%= config.bin %> <%= command.id %> --count 1 --type vm   # wait for the next VM change',
  ]

  static override flags = {
    since: Flags.string({
      description:
        'Replay kept events from this time on first: a duration back (30s, 10m, 2h, 1d), a time today (14:05), a date and time (2026-12-07T14:05:00Z) or Unix seconds.',
    }),
    vm: Flags.string({
      description: 'Only events of this VM (repeatable; the daemon’s own events still show).',
      multiple: true,
    }),
    type: Flags.string({
      description: `Only events of this type (repeatable): ${TYPE_WORDS.join(', ')}.`,
      multiple: true,
    }),
    count: Flags.integer({ description: 'Exit after this many events.', min: 1 }),
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(Events)
    // everything the flags say is checked before the daemon is asked (or started)
    const types = new Set<EventType>()
    for (const word of flags.type ?? []) {
      const expanded = expandEventType(word)
      if (!expanded)
        throw new UsageError(`'${word}' is not an event type`, {
          flag: '--type',
          hint: `one of ${TYPE_WORDS.join(', ')}`,
        })
      for (const t of expanded) types.add(t)
    }
    let since: number | undefined
    if (flags.since !== undefined) {
      const { parseSince } = await import('../core/parse/since.js')
      since = parseSince(flags.since, { flag: '--since' })
    }
    const json = this.jsonEnabled()
    const { eventLine } = await import('../ui/events.js')
    const client = await this.daemon()
    const signal = currentAbortSignal()
    const filter = { vms: flags.vm ?? [], types: [...types] }
    const aborted = new Promise<undefined>((resolve) => {
      if (signal.aborted) resolve(undefined)
      signal.addEventListener('abort', () => resolve(undefined), { once: true })
    })
    let cursor: number | undefined
    if (since === undefined) {
      cursor = (await client.call<EventsReply>('events.read', {})).cursor
    }
    // on stderr, so that a script knows the stream is in place before it changes things
    process.stderr.write(
      `following events${flags.count ? ` (${flags.count})` : ''}; Ctrl-C stops\n`,
    )
    let printed = 0
    while (!signal.aborted) {
      const reply = await Promise.race([
        client.call<EventsReply>('events.read', {
          ...(cursor === undefined ? { since } : { after: cursor }),
          wait: WAIT_MS,
          ...filter,
        }),
        aborted,
      ])
      if (!reply) break
      if (reply.dropped)
        process.stderr.write(`(${reply.dropped} events were no longer kept by hsmd)\n`)
      cursor = reply.cursor
      for (const event of reply.events) {
        process.stdout.write((json ? JSON.stringify(event) : eventLine(event)) + '\n')
        if (flags.count !== undefined && ++printed >= flags.count) return
      }
      if (reply.stopped) return
    }
  }
}
