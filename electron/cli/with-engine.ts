// A command's engine: created for the command, disposed after it (which stops its VMs).
import { createEngine, type Engine } from '../engine/index.ts';

export async function withEngine<T>(fn: (e: Engine) => Promise<T>): Promise<T> {
  const engine = await createEngine();
  try {
    return await fn(engine);
  } finally {
    await engine.dispose();
  }
}
