/**
 * Cuts a text that comes from (or grows with) untrusted input to at most `max` characters, saying how much was
 * left out, so no client can make an error message or a log line as large as its request.
 */
export function capText(text: string, max: number): string {
  if (text.length <= max) return text;
  const note = ` … (${text.length - max} more characters)`;
  return text.slice(0, Math.max(0, max - note.length)) + note;
}
