// Short messages for things that went wrong (or right) after a click.
export interface Notice {
  id: number;
  text: string;
  tone: 'error' | 'info';
}

export class Notices {
  items = $state<Notice[]>([]);
  private next = 1;

  push(text: string, tone: Notice['tone'] = 'error'): void {
    const id = this.next++;
    this.items.push({ id, text, tone });
    if (this.items.length > 4) this.items.shift();
    setTimeout(() => this.dismiss(id), tone === 'error' ? 12_000 : 5_000);
  }

  dismiss(id: number): void {
    this.items = this.items.filter((n) => n.id !== id);
  }
}
