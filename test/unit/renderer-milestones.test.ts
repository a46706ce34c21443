// The boot progress track drawn in each QEMU box.
import { describe, expect, it } from 'vitest';
import { bootTrack, lastMilestone } from '../../renderer/src/lib/milestones.ts';

describe('bootTrack', () => {
  it('marks reached steps with their times and pulses the next one while booting', () => {
    const steps = bootTrack({
      state: 'booting',
      startedAt: 1000,
      milestones: [
        { name: 'firmware', atMs: 120 },
        { name: 'kernel', atMs: 900 },
      ],
    });
    expect(steps.map((s) => [s.name, s.reached, s.current])).toEqual([
      ['firmware', true, false],
      ['kernel', true, false],
      ['init', false, true],
      ['login', false, false],
      ['shell', false, false],
    ]);
    expect(steps[1]!.afterMs).toBe(900);
  });

  it('counts earlier steps as reached when a later one arrives without them', () => {
    const steps = bootTrack({ state: 'running', startedAt: 0, milestones: [{ name: 'login', atMs: 2000 }] });
    expect(steps.filter((s) => s.reached).map((s) => s.name)).toEqual([
      'firmware',
      'kernel',
      'init',
      'login',
    ]);
    expect(steps.some((s) => s.current)).toBe(false); // running: nothing pulses
    expect(steps[0]!.afterMs).toBeUndefined();
  });

  it('turns wall-clock milestone times into offsets from the start', () => {
    const start = 1_700_000_000_000;
    const steps = bootTrack({
      state: 'running',
      startedAt: start,
      milestones: [{ name: 'shell', atMs: start + 4200 }],
    });
    expect(steps[4]!.afterMs).toBe(4200);
    expect(
      lastMilestone({ state: 'running', startedAt: start, milestones: [{ name: 'shell', atMs: start + 1 }] }),
    ).toBe('shell');
  });

  it('shows nothing in progress for a VM that stopped mid-boot', () => {
    const steps = bootTrack({ state: 'crashed', startedAt: 0, milestones: [{ name: 'firmware', atMs: 10 }] });
    expect(steps.some((s) => s.current)).toBe(false);
    expect(steps.filter((s) => s.reached)).toHaveLength(1);
  });
});
