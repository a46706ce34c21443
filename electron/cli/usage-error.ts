/** A mistake in how the command was called: exit status 2, like other Unix tools. */
export class UsageError extends Error {}
