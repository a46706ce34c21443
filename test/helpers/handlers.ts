// Test doubles for the engine's business logic: every contract method answers "not part
// of this test" unless the test supplies it. Transports are what these tests prove.
import { type Method, requests } from '../../electron/common/contract.ts';
import type { Handlers } from '../../electron/engine/engine.ts';

export function handlersWith(some: Partial<Handlers>): Handlers {
  const notHere = async (): Promise<never> => {
    throw new Error('not part of this test');
  };
  const all = Object.fromEntries(
    (Object.keys(requests) as Method[]).map((m) => [m, notHere]),
  ) as unknown as Handlers;
  return { ...all, ...some };
}
