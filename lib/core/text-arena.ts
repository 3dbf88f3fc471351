/**
 * Short strings kept off the JavaScript heap, in one byte array: a million
 * usernames held as a million strings are a million objects that every major
 * garbage collection marks. Here they are one buffer the collector never looks
 * into. Only Latin-1 strings of 1 to 255 characters are taken (one byte each,
 * after a length byte); anything else stays a string where its owner keeps it.
 *
 * An entry is addressed by its offset. Freed entries are garbage until the
 * owner compacts, which moves every entry it still holds.
 */
const FIRST_SIZE = 4096;
const MAX_LENGTH = 255;

export class TextArena {
  private bytes = Buffer.alloc(FIRST_SIZE);
  private end = 0;
  private garbage = 0;

  /** The offset `text` is now stored at, or -1 when it cannot be stored here. */
  add(text: string): number {
    const length = text.length;
    if (length === 0 || length > MAX_LENGTH) return -1;
    if (this.end + length + 1 > this.bytes.length) this.grow(length + 1);
    const at = this.end;
    const bytes = this.bytes;
    for (let i = 0; i < length; i++) {
      const c = text.charCodeAt(i);
      if (c > 0xff) return -1;
      bytes[at + 1 + i] = c;
    }
    bytes[at] = length;
    this.end = at + 1 + length;
    return at;
  }

  read(at: number): string {
    return this.bytes.toString('latin1', at + 1, at + 1 + this.bytes[at]);
  }

  /** Whether the entry at `at` is `text`, without making a string. */
  equals(at: number, text: string): boolean {
    const bytes = this.bytes;
    const length = bytes[at];
    if (text.length !== length) return false;
    for (let i = 0; i < length; i++) if (text.charCodeAt(i) !== bytes[at + 1 + i]) return false;
    return true;
  }

  free(at: number): void {
    this.garbage += this.bytes[at] + 1;
  }

  /** Whether over half of the bytes used are garbage: then the owner should `compact`. */
  get wasteful(): boolean {
    return this.garbage > FIRST_SIZE && this.garbage * 2 > this.end;
  }

  /**
   * Copies the entries still held into a new array: `relocate` is called once
   * and calls `move` with the offset of each entry its owner holds, storing
   * the new offset `move` returns.
   */
  compact(relocate: (move: (at: number) => number) => void): void {
    const from = this.bytes;
    const to = Buffer.alloc(Math.max(FIRST_SIZE, Math.ceil((this.end - this.garbage) * 1.5)));
    let end = 0;
    relocate((at) => {
      const size = from[at] + 1;
      from.copy(to, end, at, at + size);
      end += size;
      return end - size;
    });
    this.bytes = to;
    this.end = end;
    this.garbage = 0;
  }

  private grow(needed: number): void {
    const to = Buffer.alloc(Math.max(Math.ceil(this.bytes.length * 1.5), this.end + needed));
    this.bytes.copy(to, 0, 0, this.end);
    this.bytes = to;
  }
}
