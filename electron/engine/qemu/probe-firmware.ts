// Tiny firmware images for the accelerator probe. Each one runs a few real guest
// instructions — including floating point, which is where a half-working KVM fails
// (field notes §9: on these hosts /dev/kvm opens, SeaBIOS even prints, but the first x87
// instruction ends in "KVM internal error … emulation failure" and QEMU hangs) — and then
// asks QEMU to exit with a known code. Exiting with that code proves the accelerator
// executed guest code; anything else (abort, error, hang) is the reason it is not usable.
// The bytes were assembled by hand and checked instruction by instruction under TCG
// (`-d in_asm`); they are data, never executed on the host.

export interface ProbeProgram {
  /** Firmware file contents, loaded with -bios. */
  image: Buffer;
  /** QEMU arguments apart from -accel and -bios. */
  args(hardware: boolean): string[];
  /** The exit code QEMU returns when the program ran to its end. */
  exitCode: number;
}

// x86 (16-bit real mode, from the reset vector):
//   fninit; fldz                      x87 FPU
//   mov eax,cr0; and ax,~4; or ax,2; mov cr0,eax   FPU on (EM=0, MP=1)
//   mov eax,cr4; or ax,0x600; mov cr4,eax           SSE on (OSFXSR, OSXMMEXCPT)
//   xorps xmm0,xmm0                   SSE
//   mov al,0x21; out 0xf4,al          isa-debug-exit: QEMU exits with (0x21 << 1) | 1 = 67
//   hlt; jmp $-1
// and at 0xfff0 (the reset vector) `ljmp f000:0000`. 64 KiB, so it maps at 0xf0000.
function x86Image(): Buffer {
  const img = Buffer.alloc(0x10000);
  Buffer.from('dbe3d9ee0f20c083e0fb83c8020f22c00f20e00d00060f22e00f57c0b021e6f4f4ebfd', 'hex').copy(img, 0);
  Buffer.from('ea000000f0', 'hex').copy(img, 0xfff0);
  return img;
}

function words(ws: number[]): Buffer {
  const b = Buffer.alloc(ws.length * 4);
  ws.forEach((w, i) => {
    b.writeUInt32LE(w >>> 0, i * 4);
  });
  return b;
}

// AArch64 at EL1 from address 0 of the virt board's flash:
//   movz x1,#0x30,lsl#16; msr cpacr_el1,x1; isb   FP/SIMD on
//   fmov d0,xzr                                   FP
//   movz w0,#8; movk w0,#0x8400,lsl#16; hvc #0    PSCI SYSTEM_OFF: QEMU exits with 0
//   b .
const aarch64Image = words([
  0xd2a00601, 0xd5181041, 0xd5033fdf, 0x9e6703e0, 0x52800100, 0x72b08000, 0xd4000002, 0x14000000,
]);

// AArch32 (virt, cortex-a15): movw r0,#8; movt r0,#0x8400; hvc #0 (PSCI SYSTEM_OFF); b .
const armImage = words([0xe3000008, 0xe3480400, 0xe1400070, 0xeafffffe]);

const common = ['-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot'];

/** The probe program for a qemu-system target ("x86_64", "aarch64", …), if there is one. */
export function probeProgram(target: string): ProbeProgram | undefined {
  if (target === 'x86_64' || target === 'i386') {
    return {
      image: x86Image(),
      exitCode: 67,
      args: () => [
        '-machine',
        'q35',
        '-m',
        '16',
        ...common,
        '-device',
        'isa-debug-exit,iobase=0xf4,iosize=0x04',
      ],
    };
  }
  if (target === 'aarch64') {
    return {
      image: aarch64Image,
      exitCode: 0,
      // Hardware accelerators need the host's own CPU model and whichever GIC it has.
      args: (hw) =>
        hw
          ? ['-machine', 'virt,gic-version=max', '-cpu', 'host', '-m', '32', ...common]
          : ['-machine', 'virt', '-cpu', 'cortex-a57', '-m', '32', ...common],
    };
  }
  if (target === 'arm') {
    return {
      image: armImage,
      exitCode: 0,
      args: (hw) =>
        hw
          ? ['-machine', 'virt,gic-version=max', '-cpu', 'host', '-m', '32', ...common]
          : ['-machine', 'virt', '-cpu', 'cortex-a15', '-m', '32', ...common],
    };
  }
  return undefined;
}
