/*
 * Native base64 for protobuf-es's JSON codec.
 *
 * Process output travels as `bytes` fields, which the Connect JSON format (the SDK's choice)
 * carries as base64. protobuf-es encodes with `Uint8Array.prototype.toBase64` when the runtime has
 * it and otherwise with a byte-by-byte JS loop, which made base64 two thirds of the daemon's CPU
 * when streaming output. Node 20 lacks the method, so we provide it (the standard one, options
 * `alphabet` and `omitPadding`) on top of Buffer's native codec. protobuf-es looks the method up
 * once when it loads, so this module must be imported before anything that imports protobuf-es.
 */

interface ToBase64Options {
  alphabet?: 'base64' | 'base64url';
  omitPadding?: boolean;
}

type WithToBase64 = Uint8Array & { toBase64?: (options?: ToBase64Options) => string };

/** Base64 of `bytes` as the standard `Uint8Array.prototype.toBase64` computes it. */
export function toBase64(bytes: Uint8Array, options: ToBase64Options = {}): string {
  const alphabet = options.alphabet ?? 'base64';
  if (alphabet !== 'base64' && alphabet !== 'base64url') throw new TypeError(`unknown base64 alphabet: ${String(alphabet)}`);
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let text = buf.toString(alphabet);
  const padded = text.length % 4 === 0 || alphabet === 'base64' ? text : text + '='.repeat(4 - (text.length % 4));
  text = options.omitPadding ? padded.replace(/=+$/, '') : padded;
  return text;
}

if (typeof (Uint8Array.prototype as WithToBase64).toBase64 !== 'function') {
  Object.defineProperty(Uint8Array.prototype, 'toBase64', {
    configurable: true,
    writable: true,
    value: function (this: Uint8Array, options?: ToBase64Options): string {
      return toBase64(this, options);
    },
  });
}
