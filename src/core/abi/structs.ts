// Every struct of include/uapi/linux/acrn.h, plus the kernel-internal and hypervisor
// structs the simulation needs. Offsets and sizes are those of spec §10.3 (x86-64);
// `defineStruct` re-derives each offset from the C rules and the conformance test
// compares them with the compiler's view of /usr/include/linux/acrn.h.

import { ACRN_IO_REQUEST_MAX, ACRN_MMIODEV_RES_NUM, ACRN_PCI_NUM_BARS } from './constants.js'
import { anonymous, defineStruct, defineUnion, field, type Layout } from './layout.js'

// --- I/O requests (§4.1) -----------------------------------------------------

export const acrn_mmio_request = defineStruct(
  'acrn_mmio_request',
  [
    field('direction', 0, 'u32'),
    field('reserved', 4, 'u32'),
    field('address', 8, 'u64'),
    field('size', 16, 'u64'),
    field('value', 24, 'u64'),
  ],
  { size: 32 },
)

export const acrn_pio_request = defineStruct(
  'acrn_pio_request',
  [
    field('direction', 0, 'u32'),
    field('reserved', 4, 'u32'),
    field('address', 8, 'u64'),
    field('size', 16, 'u64'),
    field('value', 24, 'u32'),
  ],
  { size: 32 },
)

// Same header as the PIO request: direction, size and value share offsets (§4.1).
export const acrn_pci_request = defineStruct(
  'acrn_pci_request',
  [
    field('direction', 0, 'u32'),
    field('reserved', 4, 'u32', 3),
    field('size', 16, 'u64'),
    field('value', 24, 'u32'),
    field('bus', 28, 'u32'),
    field('dev', 32, 'u32'),
    field('func', 36, 'u32'),
    field('reg', 40, 'u32'),
  ],
  { size: 48 },
)

const io_request_reqs = defineUnion(
  'acrn_io_request.reqs',
  [
    field('pio_request', 0, acrn_pio_request),
    field('pci_request', 0, acrn_pci_request),
    field('mmio_request', 0, acrn_mmio_request),
    field('data', 0, 'u64', 8),
  ],
  { size: 64 },
)

export const acrn_io_request = defineStruct(
  'acrn_io_request',
  [
    field('type', 0, 'u32'),
    field('completion_polling', 4, 'u32'),
    field('reserved0', 8, 'u32', 14),
    field('reqs', 64, io_request_reqs),
    field('reserved1', 128, 'u32'),
    field('kernel_handled', 132, 'u32'),
    field('processed', 136, 'u32'),
  ],
  { size: 256, aligned: 256 },
)

export const acrn_io_request_buffer = defineStruct(
  'acrn_io_request_buffer',
  [
    anonymous(
      0,
      defineUnion(
        'acrn_io_request_buffer.(anonymous)',
        [
          field('req_slot', 0, acrn_io_request, ACRN_IO_REQUEST_MAX),
          field('reserved', 0, 'u8', 4096),
        ],
        { size: 4096 },
      ),
    ),
  ],
  { size: 4096 },
)

export const acrn_ioreq_notify = defineStruct(
  'acrn_ioreq_notify',
  [field('vmid', 0, 'u16'), field('reserved', 2, 'u16'), field('vcpu', 4, 'u32')],
  { size: 8 },
)

// --- VM management (§2) ----------------------------------------------------------

// The installed header spells uuid as guid_t, mainline as __u8[16]: same bytes (§0).
export const acrn_vm_creation = defineStruct(
  'acrn_vm_creation',
  [
    field('vmid', 0, 'u16'),
    field('reserved0', 2, 'u16'),
    field('vcpu_num', 4, 'u16'),
    field('reserved1', 6, 'u16'),
    field('uuid', 8, 'u8', 16),
    field('vm_flag', 24, 'u64'),
    field('ioreq_buf', 32, 'u64'),
    field('cpu_affinity', 40, 'u64'),
  ],
  { size: 48 },
)

const GP_REGS = [
  'rax',
  'rcx',
  'rdx',
  'rbx',
  'rsp',
  'rbp',
  'rsi',
  'rdi',
  'r8',
  'r9',
  'r10',
  'r11',
  'r12',
  'r13',
  'r14',
  'r15',
] as const

export const acrn_gp_regs = defineStruct(
  'acrn_gp_regs',
  GP_REGS.map((reg, i) => field(reg, i * 8, 'le64')),
  { size: 128 },
)

export const acrn_descriptor_ptr = defineStruct(
  'acrn_descriptor_ptr',
  [field('limit', 0, 'le16'), field('base', 2, 'le64'), field('reserved', 10, 'le16', 3)],
  { size: 16, packed: true },
)

export const acrn_regs = defineStruct(
  'acrn_regs',
  [
    field('gprs', 0, acrn_gp_regs),
    field('gdt', 128, acrn_descriptor_ptr),
    field('idt', 144, acrn_descriptor_ptr),
    field('rip', 160, 'le64'),
    field('cs_base', 168, 'le64'),
    field('cr0', 176, 'le64'),
    field('cr4', 184, 'le64'),
    field('cr3', 192, 'le64'),
    field('ia32_efer', 200, 'le64'),
    field('rflags', 208, 'le64'),
    field('reserved_64', 216, 'le64', 4),
    field('cs_ar', 248, 'le32'),
    field('cs_limit', 252, 'le32'),
    field('reserved_32', 256, 'le32', 3),
    field('cs_sel', 268, 'le16'),
    field('ss_sel', 270, 'le16'),
    field('ds_sel', 272, 'le16'),
    field('es_sel', 274, 'le16'),
    field('fs_sel', 276, 'le16'),
    field('gs_sel', 278, 'le16'),
    field('ldt_sel', 280, 'le16'),
    field('tr_sel', 282, 'le16'),
  ],
  { size: 288 },
)

export const acrn_vcpu_regs = defineStruct(
  'acrn_vcpu_regs',
  [field('vcpu_id', 0, 'u16'), field('reserved', 2, 'u16', 3), field('vcpu_regs', 8, acrn_regs)],
  { size: 296 },
)

// --- Memory (§3) -------------------------------------------------------------------

export const acrn_vm_memmap = defineStruct(
  'acrn_vm_memmap',
  [
    field('type', 0, 'u32'),
    field('attr', 4, 'u32'),
    field('user_vm_pa', 8, 'u64'),
    anonymous(
      16,
      defineUnion(
        'acrn_vm_memmap.(anonymous)',
        [field('service_vm_pa', 0, 'u64'), field('vma_base', 0, 'u64')],
        { size: 8 },
      ),
    ),
    field('len', 24, 'u64'),
  ],
  { size: 32 },
)

// --- Pass-through and virtual devices (§7) -------------------------------------------

export const acrn_ptdev_irq = defineStruct(
  'acrn_ptdev_irq',
  [
    field('type', 0, 'u32'),
    field('virt_bdf', 4, 'u16'),
    field('phys_bdf', 6, 'u16'),
    field(
      'intx',
      8,
      defineStruct(
        'acrn_ptdev_irq.intx',
        [field('virt_pin', 0, 'u32'), field('phys_pin', 4, 'u32'), field('is_pic_pin', 8, 'u32')],
        { size: 12, origin: 'inline' },
      ),
    ),
  ],
  { size: 20 },
)

export const acrn_pcidev = defineStruct(
  'acrn_pcidev',
  [
    field('type', 0, 'u32'),
    field('virt_bdf', 4, 'u16'),
    field('phys_bdf', 6, 'u16'),
    field('intr_line', 8, 'u8'),
    field('intr_pin', 9, 'u8'),
    field('bar', 12, 'u32', ACRN_PCI_NUM_BARS),
  ],
  { size: 36 },
)

export const acrn_mmiodev = defineStruct(
  'acrn_mmiodev',
  [
    field('name', 0, 'u8', 8),
    field(
      'res',
      8,
      defineStruct(
        'acrn_mmiodev.res',
        [
          field('user_vm_pa', 0, 'u64'),
          field('service_vm_pa', 8, 'u64'),
          field('size', 16, 'u64'),
          field('mem_type', 24, 'u64'),
        ],
        { size: 32, origin: 'inline' },
      ),
      ACRN_MMIODEV_RES_NUM,
    ),
  ],
  { size: 104 },
)

export const acrn_vdev = defineStruct(
  'acrn_vdev',
  [
    field(
      'id',
      0,
      defineUnion(
        'acrn_vdev.id',
        [
          field('value', 0, 'u64'),
          field(
            'fields',
            0,
            defineStruct(
              'acrn_vdev.id.fields',
              [
                field('vendor', 0, 'le16'),
                field('device', 2, 'le16'),
                field('legacy_id', 4, 'le32'),
              ],
              { size: 8, origin: 'inline' },
            ),
          ),
        ],
        { size: 8 },
      ),
    ),
    field('slot', 8, 'u64'),
    field('io_addr', 16, 'u32', ACRN_PCI_NUM_BARS),
    field('io_size', 40, 'u32', ACRN_PCI_NUM_BARS),
    field('args', 64, 'u8', 128),
  ],
  { size: 192 },
)

export const acrn_msi_entry = defineStruct(
  'acrn_msi_entry',
  [field('msi_addr', 0, 'u64'), field('msi_data', 8, 'u64')],
  { size: 16 },
)

// --- Power management (§7.8) ---------------------------------------------------------

export const acrn_acpi_generic_address = defineStruct(
  'acrn_acpi_generic_address',
  [
    field('space_id', 0, 'u8'),
    field('bit_width', 1, 'u8'),
    field('bit_offset', 2, 'u8'),
    field('access_size', 3, 'u8'),
    field('address', 4, 'u64'),
  ],
  { size: 12, packed: true },
)

export const acrn_cstate_data = defineStruct(
  'acrn_cstate_data',
  [
    field('cx_reg', 0, acrn_acpi_generic_address),
    field('type', 12, 'u8'),
    field('latency', 16, 'u32'),
    field('power', 24, 'u64'),
  ],
  { size: 32 },
)

export const acrn_pstate_data = defineStruct(
  'acrn_pstate_data',
  [
    field('core_frequency', 0, 'u64'),
    field('power', 8, 'u64'),
    field('transition_latency', 16, 'u64'),
    field('bus_master_latency', 24, 'u64'),
    field('control', 32, 'u64'),
    field('status', 40, 'u64'),
  ],
  { size: 48 },
)

// --- ioeventfd and irqfd (§5, §6) ----------------------------------------------------

export const acrn_ioeventfd = defineStruct(
  'acrn_ioeventfd',
  [
    field('fd', 0, 'u32'),
    field('flags', 4, 'u32'),
    field('addr', 8, 'u64'),
    field('len', 16, 'u32'),
    field('reserved', 20, 'u32'),
    field('data', 24, 'u64'),
  ],
  { size: 32 },
)

export const acrn_irqfd = defineStruct(
  'acrn_irqfd',
  [field('fd', 0, 's32'), field('flags', 4, 'u32'), field('msi', 8, acrn_msi_entry)],
  { size: 24 },
)

// --- Kernel-internal (drivers/virt/acrn/acrn_drv.h, §3.2) -------------------------------

export const vm_memory_region_op = defineStruct(
  'vm_memory_region_op',
  [
    field('type', 0, 'u32'),
    field('attr', 4, 'u32'),
    field('user_vm_pa', 8, 'u64'),
    field('service_vm_pa', 16, 'u64'),
    field('size', 24, 'u64'),
  ],
  { size: 32, origin: 'kernel' },
)

// A 24-byte header and a flexible array of ops; `regions_op` has no elements of its own.
export const vm_memory_region_batch = defineStruct(
  'vm_memory_region_batch',
  [
    field('vmid', 0, 'u16'),
    field('reserved', 2, 'u16', 3),
    field('regions_num', 8, 'u32'),
    field('regions_gpa', 16, 'u64'),
    field('regions_op', 24, vm_memory_region_op, 0),
  ],
  { size: 24, origin: 'kernel' },
)

// HC_SET_IOREQ_BUFFER takes the address of this 8-byte struct, not the page (§2.2).
export const acrn_ioreq_buffer = defineStruct('acrn_ioreq_buffer', [field('ioreq_buf', 0, 'u64')], {
  size: 8,
  origin: 'kernel',
})

// --- Hypervisor (acrn-hypervisor acrn_common.h, §7.1, §7.3) ------------------------------

export const acrn_irqline_ops = defineStruct(
  'acrn_irqline_ops',
  [field('gsi', 0, 'u32'), field('op', 4, 'u32')],
  { size: 8, aligned: 8, origin: 'hypervisor' },
)

export const acrn_intr_monitor = defineStruct(
  'acrn_intr_monitor',
  [field('cmd', 0, 'u32'), field('buf_cnt', 4, 'u32'), field('buffer', 8, 'u64', 48)],
  { size: 392, aligned: 8, origin: 'hypervisor' },
)

/** The 22 structs of the UAPI header, in header order. */
export const UAPI_STRUCTS: readonly Layout[] = [
  acrn_mmio_request,
  acrn_pio_request,
  acrn_pci_request,
  acrn_io_request,
  acrn_io_request_buffer,
  acrn_ioreq_notify,
  acrn_vm_creation,
  acrn_gp_regs,
  acrn_descriptor_ptr,
  acrn_regs,
  acrn_vcpu_regs,
  acrn_vm_memmap,
  acrn_ptdev_irq,
  acrn_pcidev,
  acrn_mmiodev,
  acrn_vdev,
  acrn_msi_entry,
  acrn_acpi_generic_address,
  acrn_cstate_data,
  acrn_pstate_data,
  acrn_ioeventfd,
  acrn_irqfd,
]

/** Structs of the kernel driver and the hypervisor that cross no user boundary. */
export const INTERNAL_STRUCTS: readonly Layout[] = [
  vm_memory_region_op,
  vm_memory_region_batch,
  acrn_ioreq_buffer,
  acrn_irqline_ops,
  acrn_intr_monitor,
]

export const ALL_STRUCTS: readonly Layout[] = [...UAPI_STRUCTS, ...INTERNAL_STRUCTS]

const BY_NAME = new Map(ALL_STRUCTS.map((s) => [s.name, s]))

/** Find a struct by name; `struct ` prefix and `acrn_` prefix are optional. */
export function findStruct(name: string): Layout | undefined {
  const bare = name.trim().replace(/^struct\s+/, '')
  return BY_NAME.get(bare) ?? BY_NAME.get(`acrn_${bare}`)
}
