// Zip archives (e.g. an SD image published as .img.zip): every entry name is checked
// before anything is written, then each file entry streams into the store with its digest.
import fs from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import { unsafeZipEntry } from './codecs.ts';
import { HashingFileSink } from './sink.ts';
import type { Store, StoredBlob } from './store.ts';

export interface ExtractedFile extends StoredBlob {
  name: string;
}

type Entry = yauzl.Entry;

function openZip(file: string): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) => {
    // decodeStrings off: we decode and judge the names ourselves, to say why one is refused.
    yauzl.open(
      file,
      { lazyEntries: true, decodeStrings: false, validateEntrySizes: true, autoClose: false },
      (err, zf) => (err || !zf ? reject(err ?? new Error('cannot open zip')) : resolve(zf)),
    );
  });
}

function entryName(e: Entry): string {
  const raw = e.fileName as unknown as string | Buffer; // a Buffer, since decodeStrings is off
  if (typeof raw === 'string') return raw;
  // General-purpose flag bit 11: the name is UTF-8; otherwise CP437, near enough latin1 for ASCII names.
  return raw.toString((e.generalPurposeBitFlag & 0x800) !== 0 ? 'utf8' : 'latin1');
}

async function entries(zf: yauzl.ZipFile): Promise<Entry[]> {
  return new Promise((resolve, reject) => {
    const all: Entry[] = [];
    zf.on('entry', (e: Entry) => {
      all.push(e);
      zf.readEntry();
    });
    zf.once('end', () => resolve(all));
    zf.once('error', reject);
    zf.readEntry();
  });
}

/** Extracts every file of `zipPath` into the store. Nothing is stored if any name is unsafe. */
export async function extractZip(zipPath: string, label: string, store: Store): Promise<ExtractedFile[]> {
  let zf: yauzl.ZipFile;
  try {
    zf = await openZip(zipPath);
  } catch (err) {
    throw new Error(`${label} is not a readable zip: ${(err as Error).message}`);
  }
  try {
    const list = await entries(zf);
    for (const e of list) {
      const name = entryName(e);
      const why = unsafeZipEntry(name);
      if (why) throw new Error(`${label}: refusing zip entry "${name}": ${why}`);
    }
    const files = list.filter((e) => !entryName(e).endsWith('/'));
    if (files.length === 0) throw new Error(`${label} holds no files`);
    const out: ExtractedFile[] = [];
    for (const e of files) {
      const name = entryName(e).replace(/\\/g, '/');
      const stream = await new Promise<NodeJS.ReadableStream>((resolve, reject) =>
        zf.openReadStream(e, (err, s) => (err || !s ? reject(err) : resolve(s))),
      );
      const tmp = store.tempPath();
      const sink = new HashingFileSink(tmp);
      try {
        await pipeline(stream, sink);
      } catch (err) {
        await fs.rm(tmp, { force: true });
        throw new Error(`${label}: cannot extract ${name}: ${(err as Error).message}`);
      }
      out.push({ name, ...(await store.commit(tmp, sink.digest())) });
    }
    return out;
  } finally {
    zf.close();
  }
}
