// User settings, one JSON file `<stacklabHome>/settings.json`. Lab mode and the CLI use
// `conf`; the Electron build passes an electron-store (built on conf) through `open`, with
// the same name and directory, so both front ends read and write the same file. Every
// write is checked against a zod schema; values read back are checked too, because people
// edit this file by hand.
import { existsSync, renameSync } from 'node:fs';
import path from 'node:path';
import Conf from 'conf';
import { z } from 'zod';
import { stacklabHome } from './paths.ts';

export const settingsSchema = z.object({
  qemuPath: z
    .string()
    .min(1)
    .refine((p) => path.isAbsolute(p), 'must be an absolute path')
    .optional(),
  theme: z.enum(['system', 'light', 'dark']),
  scrollbackLines: z.number().int().min(100).max(1_000_000),
  catalogueUrls: z.array(z.url({ protocol: /^https?$/ })).max(32),
});
export type SettingsValues = z.infer<typeof settingsSchema>;
export type SettingKey = keyof SettingsValues;

export const settingDefaults: SettingsValues = {
  theme: 'system',
  scrollbackLines: 10_000,
  catalogueUrls: [],
};

export const SETTINGS_NAME = 'settings';

/** The part of conf / electron-store this module uses. */
export interface SettingsStore {
  readonly path: string;
  readonly store: Record<string, unknown>;
  set(key: string, value: unknown): void;
  delete(key: string): void;
}

export interface StoreOptions {
  cwd: string;
  configName: string;
}

export interface Settings {
  readonly path: string;
  /** Set when the file could not be read and was moved aside (one line). */
  readonly warning?: string;
  all(): SettingsValues;
  get<K extends SettingKey>(key: K): SettingsValues[K];
  /** Validates and stores; `null` resets a setting to its default. Throws one line. */
  set(key: string, value: unknown): void;
}

const keys = Object.keys(settingsSchema.shape) as SettingKey[];

function isKey(key: string): key is SettingKey {
  return (keys as string[]).includes(key);
}

export function createSettings(
  opts: { cwd?: string; open?: (o: StoreOptions) => SettingsStore } = {},
): Settings {
  const cwd = opts.cwd ?? stacklabHome();
  const open =
    opts.open ??
    ((o: StoreOptions) => new Conf({ projectName: 'stacklab', cwd: o.cwd, configName: o.configName }));
  let store: SettingsStore;
  let warning: string | undefined;
  try {
    store = open({ cwd, configName: SETTINGS_NAME });
  } catch (e) {
    // Unreadable JSON: keep the user's file (renamed) rather than overwrite it, start afresh.
    const file = path.join(cwd, `${SETTINGS_NAME}.json`);
    if (!existsSync(file)) throw new Error(`cannot open settings in ${cwd}: ${(e as Error).message}`);
    const aside = `${file}.unreadable-${Date.now()}`;
    renameSync(file, aside);
    warning = `settings file was not valid JSON; moved to ${aside} and started from defaults`;
    store = open({ cwd, configName: SETTINGS_NAME });
  }

  const read = <K extends SettingKey>(key: K): SettingsValues[K] => {
    const r = settingsSchema.shape[key].safeParse(store.store[key]);
    return r.success && r.data !== undefined ? (r.data as SettingsValues[K]) : settingDefaults[key];
  };

  return {
    path: store.path,
    warning,
    all() {
      const out = { ...settingDefaults };
      for (const k of keys) {
        const v = read(k);
        if (v !== undefined) (out as Record<string, unknown>)[k] = v;
      }
      return out;
    },
    get: read,
    set(key, value) {
      if (!isKey(key)) throw new Error(`unknown setting "${key}" (known: ${keys.join(', ')})`);
      if (value === null || value === undefined) {
        store.delete(key);
        return;
      }
      const r = settingsSchema.shape[key].safeParse(value);
      if (!r.success) {
        const issue = r.error.issues[0];
        const where = issue?.path.length ? `[${issue.path.join('.')}]` : '';
        throw new Error(`setting ${key}${where}: ${issue?.message ?? 'invalid value'}`);
      }
      store.set(key, r.data);
    },
  };
}
