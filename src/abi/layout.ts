/**
 * C struct layouts as data: each field's name, offset, type and direction, and
 * the codecs that turn the bytes a process passed to ioctl() into a typed
 * object and back. Layouts are for the 64-bit little-endian ABIs Linux
 * iommufd supports (x86-64, arm64, ppc64le, riscv64).
 *
 * @example
 * const Dst = struct('iommu_destroy', 8, [field('size', 0, 'u32', 'in'), field('id', 4, 'u32', 'in')]);
 * Dst.decode(bytes).id; // number
 */

/** The largest u64 (U64_MAX, ~0ULL): the last byte of the address space. */
export const U64_MAX = (1n << 64n) - 1n;

/** Scalar C types; `u64` decodes to bigint, every other scalar to number. */
export type FieldType = 'u8' | 'u16' | 'u32' | 's32' | 'u64';

/** in: read by the kernel; out: written by it; inout: both; reserved: must be zero. */
export type FieldDir = 'in' | 'out' | 'inout' | 'reserved';

export interface Field<N extends string = string, T extends FieldType = FieldType> {
  readonly name: N;
  readonly offset: number;
  readonly type: T;
  readonly dir: FieldDir;
}

export type FieldValue<T extends FieldType> = T extends 'u64' ? bigint : number;

/** The decoded object of a field list: `{ [name]: number | bigint }`. */
export type Decoded<Fs extends readonly Field[]> = {
  [K in Fs[number] as K['name']]: FieldValue<K['type']>;
};

const WIDTH: Record<FieldType, number> = { u8: 1, u16: 2, u32: 4, s32: 4, u64: 8 };

/** Byte width of a field type. */
export function widthOf(type: FieldType): number {
  return WIDTH[type];
}

/** Describe one field; the generic parameters keep the name and type literal. */
export function field<N extends string, T extends FieldType>(
  name: N,
  offset: number,
  type: T,
  dir: FieldDir,
): Field<N, T> {
  return { name, offset, type, dir };
}

export interface Layout<V> {
  readonly name: string;
  /** sizeof(struct) */
  readonly size: number;
  readonly fields: readonly Field[];
  /** Decode `size` bytes (a shorter buffer is read as if zero-extended). */
  decode(bytes: Uint8Array): V;
  /** Encode into a fresh `size`-byte buffer; absent fields are zero. */
  encode(value: Partial<V>): Uint8Array;
  /** Byte offset just past a field: the kernel's offsetofend(). */
  endOf(name: keyof V & string): number;
}

/*
 * Fields are read and written on the bytes themselves, little-endian: a
 * DataView needs the array's ArrayBuffer, and asking a small array for it
 * makes V8 move the bytes off its heap into a buffer of their own (an
 * allocation and a copy per struct, on every ioctl).
 */
/** The little-endian u32 at `o` of `b`, read without a DataView (see above). */
export function u32At(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

function putU32(b: Uint8Array, o: number, x: number): void {
  b[o] = x;
  b[o + 1] = x >>> 8;
  b[o + 2] = x >>> 16;
  b[o + 3] = x >>> 24;
}

function u64At(b: Uint8Array, o: number): bigint {
  const lo = u32At(b, o);
  const hi = u32At(b, o + 4);
  return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
}

/** The largest u64 that is exact as a Number (2^53 - 1). */
const SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const TWO_32 = 2 ** 32;

/** Store `v` (a bigint or an integer Number) modulo 2^64. */
function putU64(b: Uint8Array, o: number, v: number | bigint): void {
  const x = BigInt.asUintN(64, typeof v === 'bigint' ? v : BigInt(v));
  if (x <= SAFE) {
    // one conversion instead of two bigint operations (each allocates)
    const n = Number(x);
    putU32(b, o, n >>> 0);
    putU32(b, o + 4, Math.floor(n / TWO_32));
    return;
  }
  putU32(b, o, Number(x & 0xffff_ffffn));
  putU32(b, o + 4, Number(x >> 32n));
}

/** The readers and writers the generated codecs call, by field type. */
const CODEC = {
  get_u8: (b: Uint8Array, o: number) => b[o]!,
  get_u16: (b: Uint8Array, o: number) => b[o]! | (b[o + 1]! << 8),
  get_u32: u32At,
  get_s32: (b: Uint8Array, o: number) => u32At(b, o) | 0,
  get_u64: u64At,
  put_u8: (b: Uint8Array, o: number, v: number | bigint) => {
    b[o] = Number(v);
  },
  put_u16: (b: Uint8Array, o: number, v: number | bigint) => {
    const x = Number(v);
    b[o] = x;
    b[o + 1] = x >>> 8;
  },
  put_u32: (b: Uint8Array, o: number, v: number | bigint) => putU32(b, o, Number(v)),
  put_s32: (b: Uint8Array, o: number, v: number | bigint) => putU32(b, o, Number(v)),
  put_u64: putU64,
};

/**
 * The decoder and encoder of one layout, generated as straight-line code:
 * the decoded object is one literal (a single shape per layout) and every
 * field is a constant-offset access, where a loop over `fields` would make
 * each property store a megamorphic keyed store shared by all layouts.
 * Field names and offsets are this module's own data, checked by `struct`.
 */
function compileCodec(
  size: number,
  fields: readonly Field[],
): {
  decode: (bytes: Uint8Array) => Record<string, number | bigint>;
  encode: (value: Record<string, number | bigint | undefined>) => Uint8Array;
} {
  const key = (f: Field) => JSON.stringify(f.name);
  const reads = fields.map((f) => `${key(f)}: c.get_${f.type}(b, ${f.offset})`).join(',\n');
  const writes = fields
    .map((f) => `x = v[${key(f)}];\nif (x !== undefined) c.put_${f.type}(b, ${f.offset}, x);`)
    .join('\n');
  const source = `
    function decode(bytes) {
      let b = bytes;
      if (b.length < ${size}) { b = new Uint8Array(${size}); b.set(bytes); }
      return {${reads}};
    }
    function encode(v) {
      const b = new Uint8Array(${size});
      let x;
      ${writes}
      return b;
    }
    return { decode, encode };`;
  return new Function('c', source)(CODEC);
}

/** Define a struct layout. Fields must lie inside `size` and must not overlap. */
export function struct<const Fs extends readonly Field[]>(
  name: string,
  size: number,
  fields: Fs,
): Layout<Decoded<Fs>> {
  const used = new Uint8Array(size);
  for (const f of fields) {
    const end = f.offset + WIDTH[f.type];
    if (f.offset % WIDTH[f.type] !== 0 || end > size) {
      throw new Error(`${name}.${f.name}: offset ${f.offset} misaligned or past size ${size}`);
    }
    for (let i = f.offset; i < end; i++) {
      if (used[i]) throw new Error(`${name}.${f.name}: overlaps another field`);
      used[i] = 1;
    }
  }
  const byName = new Map(fields.map((f) => [f.name, f]));
  const codec = compileCodec(size, fields);
  type V = Decoded<Fs>;
  return {
    name,
    size,
    fields,
    decode: codec.decode as (bytes: Uint8Array) => V,
    encode: codec.encode as (value: Partial<V>) => Uint8Array,
    endOf(fieldName: string): number {
      const f = byName.get(fieldName);
      if (!f) throw new Error(`${name} has no field ${fieldName}`);
      return f.offset + WIDTH[f.type];
    },
  };
}
