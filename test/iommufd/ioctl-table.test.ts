/**
 * The iommufd ioctl table is typed by the command table: each handler takes
 * its own command's struct (Ucmd is invariant in it), so a handler wired to
 * another command, wider or narrower, is a type error. `npm run typecheck`
 * fails if one of the @ts-expect-error lines below stops being an error.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IommufdCmdStruct } from '../../src/abi/iommufd.ts';
import type { HandlerTable } from '../../src/iommufd/main.ts';
import type { Ucmd } from '../../src/iommufd/ucmd.ts';

type MapCmd = IommufdCmdStruct<'IOMMU_IOAS_MAP'>;
type UnmapCmd = IommufdCmdStruct<'IOMMU_IOAS_UNMAP'>;

const mapHandler = (_ctx: unknown, _caller: unknown, u: Ucmd<MapCmd>) => Number(u.cmd.iova);
const unmapHandler = (_ctx: unknown, _caller: unknown, u: Ucmd<UnmapCmd>) => Number(u.cmd.length);

test('a handler fits only its own command of the table (checked by tsc)', () => {
  const right: Pick<HandlerTable, 'IOMMU_IOAS_MAP' | 'IOMMU_IOAS_UNMAP'> = {
    IOMMU_IOAS_MAP: mapHandler,
    IOMMU_IOAS_UNMAP: unmapHandler,
  };
  const wrong: Pick<HandlerTable, 'IOMMU_IOAS_MAP' | 'IOMMU_IOAS_UNMAP'> = {
    // @ts-expect-error UNMAP's struct is narrower than MAP's
    IOMMU_IOAS_MAP: unmapHandler,
    // @ts-expect-error MAP's struct is wider than UNMAP's
    IOMMU_IOAS_UNMAP: mapHandler,
  };
  // @ts-expect-error every command of the table needs a handler
  const missing: HandlerTable = { IOMMU_IOAS_MAP: mapHandler };
  assert.equal(
    Object.keys(right).length + Object.keys(wrong).length + Object.keys(missing).length,
    5,
  );
});
