// libext2fs's WASM glue (loaded by ext2fs, and by etcher-sdk through balena-image-fs)
// registers process-wide uncaughtException/unhandledRejection handlers that rethrow from
// inside its one-line, 350 KB JavaScript file — so any crash anywhere in the process
// prints that whole line to the terminal. Node's own default does the same thing minus
// the dump, so the glue's two handlers are removed once it has loaded.
const GLUE = [
  /^function\s*\(ex\)\s*\{\s*if\s*\(!\(ex instanceof ExitStatus\)\)/,
  /^function\s*\(reason\)\s*\{\s*throw reason\s*\}$/,
];

export function quietWasmHandlers(): void {
  const glue = (l: (...a: never[]) => unknown) => GLUE.some((re) => re.test(l.toString()));
  for (const l of process.listeners('uncaughtException'))
    if (glue(l)) process.removeListener('uncaughtException', l);
  for (const l of process.listeners('unhandledRejection'))
    if (glue(l)) process.removeListener('unhandledRejection', l);
}
