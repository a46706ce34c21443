/** The lab server's socket URL for a page at `href` (the token rides in the page's ?token=). */
export function labSocketUrl(href: string): string {
  const page = new URL(href);
  const token = page.searchParams.get('token') ?? '';
  const scheme = page.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${page.host}/ws?token=${encodeURIComponent(token)}`;
}
