import { describe, expect, it } from 'vitest';
import { hostAccelerators, hostTarget, meaningfulLine } from '../../electron/engine/qemu/accel.ts';
import { probeProgram } from '../../electron/engine/qemu/probe-firmware.ts';

// stderr captured from Debian's QEMU 7.2 on this kind of machine (field notes §9).
const KVM_EMULATION_FAILURE = `qemu-system-x86_64: warning: host doesn't support requested feature: CPUID.01H:ECX.pni [bit 0]
KVM internal error. Suberror: 1
extra data[0]: 0x0000000000000001
extra data[1]: 0xe083c0200feed90f
emulation failure
EAX=00000000 EBX=00000000 ECX=00000000 EDX=00060fb1
ES =0000 00000000 0000ffff 00009300
CR0=60000010 CR2=00000000 CR3=00000000 CR4=00000000
Code=db e3 <d9> ee 0f 20 c0 83 e0 fb 83 c8 02 0f 22 c0
`;
const KVM_MSR_ABORT = `qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69
qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion \`ret == cpu->kvm_msr_buf->nmsrs' failed.
`;

describe('accelerator probe helpers', () => {
  it('reduces QEMU failure output to the one line that says what went wrong', () => {
    expect(meaningfulLine(KVM_EMULATION_FAILURE)).toBe('KVM internal error. Suberror: 1 (emulation failure)');
    expect(meaningfulLine(KVM_MSR_ABORT)).toBe('error: failed to set MSR 0x10a to 0x69');
    expect(meaningfulLine('qemu-system-aarch64: warning: something odd\n')).toBe('warning: something odd');
    expect(meaningfulLine('')).toBe('');
  });

  it('tries the accelerator each platform has', () => {
    expect(hostAccelerators('linux')).toEqual(['kvm']);
    expect(hostAccelerators('darwin')).toEqual(['hvf']);
    expect(hostAccelerators('win32')).toEqual(['whpx']);
    expect(hostTarget('x64')).toBe('x86_64');
    expect(hostTarget('arm64')).toBe('aarch64');
  });

  it('has test programs that end in a QEMU exit (checked instruction by instruction under TCG)', () => {
    const x86 = probeProgram('x86_64');
    expect(x86?.image.length).toBe(0x10000);
    // The reset vector jumps to f000:0000, where the program starts with fninit.
    expect(x86?.image.subarray(0xfff0, 0xfff5).toString('hex')).toBe('ea000000f0');
    expect(x86?.image.subarray(0, 2).toString('hex')).toBe('dbe3');
    expect(x86?.exitCode).toBe(67);
    expect(x86?.args(false)).toContain('isa-debug-exit,iobase=0xf4,iosize=0x04');
    expect(probeProgram('aarch64')?.args(true)).toEqual(expect.arrayContaining(['-cpu', 'host']));
    expect(probeProgram('aarch64')?.args(false)).toEqual(expect.arrayContaining(['-cpu', 'cortex-a57']));
    expect(probeProgram('riscv64')).toBeUndefined();
  });
});
