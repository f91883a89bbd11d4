// What --host accepts (core/daemon/ssh/hosts.ts), how global flags before the command
// move after it (cli/fast.ts), and the ssh command line hsmctl runs (ssh/transport.ts).
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { globalFlagsLast } from '../../../src/cli/fast.js'
import { parseHost, parseHosts } from '../../../src/core/daemon/ssh/hosts.js'
import { dialCommand, sshCommand } from '../../../src/core/daemon/ssh/transport.js'
import { UsageError } from '../../../src/core/errors.js'

describe('parseHost', () => {
  it('takes ssh://[user@]host[:port], IPv6 in brackets', () => {
    expect(parseHost('ssh://edge1')).toEqual({ label: 'edge1', host: 'edge1' })
    expect(parseHost('ssh://root@10.0.0.5:2222/')).toEqual({
      label: 'root@10.0.0.5:2222',
      host: '10.0.0.5',
      user: 'root',
      port: 2222,
    })
    expect(parseHost('ssh://[::1]:22')).toMatchObject({ host: '::1', port: 22 })
  })

  it.each([
    ['edge1', /is not a host URL/],
    ['tcp://edge1', /uses tcp:\/\/; hsmctl reaches remote hosts over ssh:\/\/ only/],
    ['ssh://-oProxyCommand=x', /has a host name hsmctl cannot pass to ssh/],
    ['ssh://-l@edge1', /has a user name hsmctl cannot pass to ssh/],
    ['ssh://edge1:0', /has port '0'; a port is 1 to 65535/],
    ['ssh://edge1:70000', /has port '70000'/],
    ['ssh://edge1/x', /has a path/],
    ['ssh://', /names no host/],
    ['ssh://[::1', /does not close it/],
  ])('refuses %s', (text, why) => {
    const e = (() => {
      try {
        parseHost(text)
      } catch (error) {
        return error
      }
    })()
    expect(e).toBeInstanceOf(UsageError)
    expect((e as Error).message).toMatch(/^--host: /)
    expect((e as Error).message).toMatch(why)
  })
})

describe('parseHosts', () => {
  it('comma-separated, or @FILE with one a line (comments and blanks skipped)', () => {
    expect(parseHosts('')).toEqual([])
    expect(parseHosts('ssh://a, ssh://b:2').map((h) => h.label)).toEqual(['a', 'b:2'])
    const dir = mkdtempSync(join(tmpdir(), 'hsmctl-hosts-'))
    writeFileSync(join(dir, 'fleet'), '# edge boxes\nssh://a\n\nssh://root@b  # the lab\n')
    expect(parseHosts(`@${join(dir, 'fleet')}`).map((h) => h.label)).toEqual(['a', 'root@b'])
    writeFileSync(join(dir, 'empty'), '# nothing\n')
    expect(() => parseHosts(`@${join(dir, 'empty')}`)).toThrow(/names no host/)
    expect(() => parseHosts(`@${join(dir, 'absent')}`)).toThrow(/does not exist/)
  })

  it('refuses an empty entry and a host named twice', () => {
    expect(() => parseHosts('ssh://a,,ssh://b')).toThrow(/has an empty entry/)
    expect(() => parseHosts('ssh://a,ssh://a')).toThrow(/a is named twice/)
  })
})

describe('globalFlagsLast', () => {
  it('moves --host and --backend before the command to after it', () => {
    expect(globalFlagsLast(['--host', 'ssh://a', 'vm', 'list', '--json'])).toEqual([
      'vm',
      'list',
      '--json',
      '--host',
      'ssh://a',
    ])
    expect(globalFlagsLast(['--host=ssh://a', '--backend', 'sim', 'vm', 'list'])).toEqual([
      'vm',
      'list',
      '--host=ssh://a',
      '--backend',
      'sim',
    ])
    // alone: the shell takes them (bin/run.js)
    expect(globalFlagsLast(['--host', 'ssh://a'])).toEqual(['--host', 'ssh://a'])
    // a program's arguments stay the program's
    expect(globalFlagsLast(['--host', 'ssh://a', 'sim', 'exec', 'prog', '-x'])).toEqual([
      'sim',
      'exec',
      '--host',
      'ssh://a',
      'prog',
      '-x',
    ])
    expect(globalFlagsLast(['--host', 'ssh://a', 'x', '--', 'y'])).toEqual([
      'x',
      '--host',
      'ssh://a',
      '--',
      'y',
    ])
    expect(globalFlagsLast(['vm', 'list', '--host', 'ssh://a'])).toEqual([
      'vm',
      'list',
      '--host',
      'ssh://a',
    ])
  })
})

describe('sshCommand', () => {
  it('runs dial-stdio on the host with the port, user and a private control master', () => {
    const env = { HSMCTL_RUNTIME_DIR: mkdtempSync(join(tmpdir(), 'hsmctl-rt-')) }
    const { file, args } = sshCommand(
      parseHost('ssh://root@edge1:2222'),
      dialCommand('sim', true),
      env,
    )
    expect(file).toBe('ssh')
    expect(args).toContain(`ControlPath=${env.HSMCTL_RUNTIME_DIR}/ssh/%C`)
    expect(args).toContain('ControlPersist=60')
    // the host after `--`: nothing from the URL can become an ssh option
    expect(args.slice(args.indexOf('--'))).toEqual([
      '--',
      'edge1',
      'hsmctl',
      'daemon',
      'dial-stdio',
      '--backend',
      'sim',
    ])
    expect(args.slice(args.indexOf('-p'), args.indexOf('-p') + 4)).toEqual([
      '-p',
      '2222',
      '-l',
      'root',
    ])
    const none = sshCommand(parseHost('ssh://edge1'), dialCommand('native', false), {
      ...env,
      HSMCTL_SSH_PERSIST: '0',
      HSMCTL_SSH_COMMAND: 'ssh -F /x/config',
    })
    expect(none.args.slice(0, 2)).toEqual(['-F', '/x/config'])
    expect(none.args).toContain('ControlPath=none')
    expect(none.args.at(-1)).toBe('--no-start')
  })
})
