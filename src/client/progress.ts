/**
 * A one-line progress bar for transfers: bytes, percentage, rate and ETA,
 * redrawn in place (at most every 100 ms) on a terminal. On anything that is
 * not a TTY it writes nothing.
 */
export interface ProgressSink {
  isTTY?: boolean;
  columns?: number;
  write(chunk: string): boolean;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${UNITS[u]}`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

export class Progress {
  private bytes = 0;
  private label = '';
  /** The clock starts at the first byte (an upload hashes its file first). */
  private started: number | null = null;
  private lastDraw = 0;
  private drawn = false;
  private readonly enabled: boolean;

  constructor(
    private readonly sink: ProgressSink,
    private readonly total: number | null,
    private readonly now: () => number = Date.now,
  ) {
    this.enabled = sink.isTTY === true;
  }

  /** The name shown before the bar (e.g. the file being copied). */
  setLabel(label: string): void {
    this.label = label;
    this.draw(true);
  }

  add(bytes: number): void {
    this.started ??= this.now();
    this.bytes += bytes;
    this.draw(false);
  }

  /** Final line (kept on screen), then a newline. */
  finish(): void {
    if (!this.enabled) return;
    this.draw(true, true);
    this.sink.write('\n');
  }

  /** Clears the line, so an error message starts on a clean one. */
  abort(): void {
    if (this.enabled && this.drawn) this.sink.write('\r\x1b[2K');
  }

  /** The text of the current line (without control characters). */
  line(final = false): string {
    const elapsed = this.started === null ? 0 : Math.max((this.now() - this.started) / 1000, 0.001);
    const rate = elapsed === 0 ? 0 : this.bytes / elapsed;
    const size =
      this.total === null
        ? formatBytes(this.bytes)
        : `${formatBytes(this.bytes)} / ${formatBytes(this.total)}`;
    const pct =
      this.total === null || this.total === 0
        ? 100
        : Math.min(100, Math.floor((this.bytes / this.total) * 100));
    const width = 20;
    const full = Math.round((pct / 100) * width);
    const bar = `[${'#'.repeat(full)}${'-'.repeat(width - full)}]`;
    const eta =
      final || this.total === null
        ? formatDuration(elapsed)
        : rate > 0
          ? formatDuration((this.total - this.bytes) / rate)
          : '--:--';
    const label = this.label === '' ? '' : `${this.label}  `;
    return `${label}${bar} ${String(pct).padStart(3)}%  ${size}  ${formatBytes(Math.round(rate))}/s  ${final ? 'in' : 'ETA'} ${eta}`;
  }

  private draw(force: boolean, final = false): void {
    if (!this.enabled) return;
    const t = this.now();
    if (!force && t - this.lastDraw < 100) return;
    this.lastDraw = t;
    let text = this.line(final);
    const cols = this.sink.columns ?? 0;
    if (cols > 10 && text.length >= cols) text = `…${text.slice(text.length - cols + 2)}`;
    this.sink.write(`\r\x1b[2K${text}`);
    this.drawn = true;
  }
}
