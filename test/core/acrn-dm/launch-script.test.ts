// Reading a launch script's VM name without running it (src/core/acrn-dm/launch-script.ts):
// what bash would pass acrn-dm as its last argument, or a refusal that says why.
import { describe, expect, it } from 'vitest'
import { readLaunchScript, ScriptReadError } from '../../../src/core/acrn-dm/launch-script.js'

const name = (text: string, args: string[] = []) => readLaunchScript(text, args).name

describe('the VM name of a launch script, read as bash would expand it', () => {
  it.each([
    ['a literal last argument', 'acrn-dm -m 128M --cpu_affinity 1 vm1\n', [], 'vm1'],
    ['an absolute path', '#!/bin/bash\n/usr/bin/acrn-dm -m 1G  demo  \n', [], 'demo'],
    ['a quoted name', "acrn-dm -m 1G 'my-vm'\n", [], 'my-vm'],
    ['a variable', 'vm_name=guest1\nacrn-dm -m 1G $vm_name\n', [], 'guest1'],
    ['an exported braced variable', 'export N=g2\nacrn-dm -m 1G "${N}"\n', [], 'g2'],
    ['the script argument', 'acrn-dm -m 1G $1\n', ['vmx'], 'vmx'],
    ['a default for a missing argument', 'n=${1:-vmdef}\nacrn-dm -m 1G $n\n', [], 'vmdef'],
    ['the argument over its default', 'n=${1:-vmdef}\nacrn-dm -m 1G $n\n', ['given'], 'given'],
    ['a concatenation', 'id=3\nacrn-dm -m 1G vm$id\n', [], 'vm3'],
    ['line continuations', 'acrn-dm -m 1G \\\n  -s 0:0,hostbridge \\\n  vmc\n', [], 'vmc'],
    ['a redirection and a pipe after it', 'acrn-dm -m 1G vmr 2>&1 | tee /tmp/log\n', [], 'vmr'],
    ['a background &', 'acrn-dm -m 1G vmb &\nwait\n', [], 'vmb'],
    ['exec and an environment assignment', 'FOO=1 exec acrn-dm -m 1G vme\n', [], 'vme'],
    [
      'an array over several lines, as ACRN 3 scripts build one',
      'vm_name=post_vm\ndm_params=(\n  -m 1G   # RAM\n  --cpu_affinity 1\n  $vm_name\n)\nacrn-dm "${dm_params[@]}"\n',
      [],
      'post_vm',
    ],
    ['a comment mentioning acrn-dm', '# acrn-dm runs below\nacrn-dm -m 1G vm9\n', [], 'vm9'],
  ])('%s', (_what, text, args, expected) => {
    expect(name(text, args)).toBe(expected)
  })

  it('gives the whole command line as bash would pass it', () => {
    const cmd = readLaunchScript('m=128M\n\nacrn-dm -m $m --cpu_affinity 1 "a b" vm1\n')
    expect(cmd).toEqual({
      name: 'vm1',
      line: 3,
      argv: ['acrn-dm', '-m', '128M', '--cpu_affinity', '1', 'a b', 'vm1'],
    })
  })

  it.each([
    ['no acrn-dm', 'qemu-system-x86_64 -m 1G\n', /no acrn-dm command/],
    ['a command substitution', 'acrn-dm -m 1G $(hostname)\n', /line 1: a command substitution/],
    ['backquotes', 'acrn-dm -m 1G `hostname`\n', /line 1: a command substitution/],
    [
      'a variable from a command substitution',
      'n=$(cat /etc/name)\nacrn-dm -m 1G $n\n',
      /line 2: \$n is set on line 1 by a command substitution/,
    ],
    [
      'a variable never set',
      'acrn-dm -m 1G $nobody\n',
      /line 1: \$nobody is not set by a plain assignment/,
    ],
    [
      'a missing argument',
      'acrn-dm -m 1G $1\n',
      /\$1 is the script's argument 1, and vm add was given none/,
    ],
    [
      "a function's argument",
      'function launch() {\n  acrn-dm -m 1G vm$1\n}\nlaunch 1\n',
      /line 2: \$1 inside function launch is the function's argument/,
    ],
    ['an option as the last word', 'acrn-dm -m 1G --debug\n', /no VM name as its last argument/],
    [
      'two different names',
      'acrn-dm -m 1G vma\nacrn-dm -m 1G vmb\n',
      /more than once with different names \(vma on line 1, vmb on line 2\)/,
    ],
    ['a binary file', 'acrn-dm\0vm1', /not a text file/],
  ])('refuses %s, saying why', (_what, text, message) => {
    expect(() => readLaunchScript(text)).toThrow(ScriptReadError)
    expect(() => readLaunchScript(text)).toThrow(message)
  })
})
