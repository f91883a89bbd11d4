// A 16550 UART at a PIO base (COM1 = 0x3F8): enough of the register set for a guest's
// serial driver to detect it and print; transmitted bytes go to the VM's console.
// Register map from the National Semiconductor PC16550D data sheet.

export const COM1_BASE = 0x3f8

const LSR_THRE = 0x20 // transmit holding register empty
const LSR_TEMT = 0x40 // transmitter empty
const LCR_DLAB = 0x80
const IIR_NO_INTERRUPT = 0x01
const IIR_FIFO_ENABLED = 0xc0
const MSR_IDLE = 0xb0 // DCD, DSR, CTS asserted: a cable with nobody typing

export class Uart16550 {
  private ier = 0
  private lcr = 0x03
  private mcr = 0
  private scr = 0
  private fcr = 0
  private dll = 0x01
  private dlm = 0

  constructor(
    readonly base: number,
    private readonly output: (byte: number) => void,
  ) {}

  /** Whether a port access falls on this UART's 8 registers. */
  claims(port: number): boolean {
    return port >= this.base && port < this.base + 8
  }

  read(port: number): number {
    const dlab = (this.lcr & LCR_DLAB) !== 0
    switch (port - this.base) {
      case 0:
        return dlab ? this.dll : 0 // no input: the receive buffer reads 0
      case 1:
        return dlab ? this.dlm : this.ier
      case 2:
        return IIR_NO_INTERRUPT | (this.fcr & 1 ? IIR_FIFO_ENABLED : 0)
      case 3:
        return this.lcr
      case 4:
        return this.mcr
      case 5:
        return LSR_THRE | LSR_TEMT
      case 6:
        return MSR_IDLE
      default:
        return this.scr
    }
  }

  write(port: number, value: number): void {
    const byte = value & 0xff
    const dlab = (this.lcr & LCR_DLAB) !== 0
    switch (port - this.base) {
      case 0:
        if (dlab) this.dll = byte
        else this.output(byte)
        break
      case 1:
        if (dlab) this.dlm = byte
        else this.ier = byte & 0x0f
        break
      case 2:
        this.fcr = byte
        break
      case 3:
        this.lcr = byte
        break
      case 4:
        this.mcr = byte & 0x1f
        break
      case 7:
        this.scr = byte
        break
      default:
        break // LSR and MSR are read-only
    }
  }
}
