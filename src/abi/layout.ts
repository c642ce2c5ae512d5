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

function readField(b: Uint8Array, f: Field): number | bigint {
  const o = f.offset;
  switch (f.type) {
    case 'u8':
      return b[o]!;
    case 'u16':
      return b[o]! | (b[o + 1]! << 8);
    case 'u32':
      return u32At(b, o);
    case 's32':
      return u32At(b, o) | 0;
    case 'u64': {
      const lo = u32At(b, o);
      const hi = u32At(b, o + 4);
      return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
    }
  }
}

function writeField(b: Uint8Array, f: Field, v: number | bigint): void {
  const o = f.offset;
  switch (f.type) {
    case 'u8':
      b[o] = Number(v);
      return;
    case 'u16': {
      const x = Number(v);
      b[o] = x;
      b[o + 1] = x >>> 8;
      return;
    }
    case 'u32':
    case 's32':
      putU32(b, o, Number(v));
      return;
    case 'u64': {
      const x = BigInt.asUintN(64, BigInt(v));
      putU32(b, o, Number(x & 0xffff_ffffn));
      putU32(b, o + 4, Number(x >> 32n));
      return;
    }
  }
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
  type V = Decoded<Fs>;
  return {
    name,
    size,
    fields,
    decode(bytes: Uint8Array): V {
      let src = bytes;
      if (src.length < size) {
        src = new Uint8Array(size);
        src.set(bytes);
      }
      const out: Record<string, number | bigint> = {};
      for (const f of fields) out[f.name] = readField(src, f);
      return out as V;
    },
    encode(value: Partial<V>): Uint8Array {
      const buf = new Uint8Array(size);
      const rec = value as Record<string, number | bigint | undefined>;
      for (const f of fields) {
        const v = rec[f.name];
        if (v !== undefined) writeField(buf, f, v);
      }
      return buf;
    },
    endOf(fieldName: string): number {
      const f = byName.get(fieldName);
      if (!f) throw new Error(`${name} has no field ${fieldName}`);
      return f.offset + WIDTH[f.type];
    },
  };
}
