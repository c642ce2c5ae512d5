/**
 * uiommu extension: the SPAPR TCE container on an iommufd (docs/extensions.md).
 * Linux's iommufd VFIO compat serves only type1; here a /dev/iommu fd (or
 * /dev/vfio/vfio served by iommufd) also takes SET_IOMMU(SPAPR_TCE_IOMMU or
 * SPAPR_TCE_v2_IOMMU), and from then on REGISTER/UNREGISTER_MEMORY,
 * TCE_GET_INFO, TCE_CREATE/REMOVE, MAP/UNMAP, ENABLE/DISABLE and
 * EEH_PE_OP on that fd are the legacy SPAPR container's, run by the same
 * {@link VfioSpaprTce} and its multi-window domains.
 *
 * - CHECK_EXTENSION: 1 for 2, 5 (EEH) and 7 besides iommufd's own answers;
 *   once SPAPR is chosen, only these.
 * - SET_IOMMU(2 or 7): ENODEV without a group set on the fd (no compat
 *   IOAS), EBUSY when a device of those groups is already open (bound and
 *   attached to the compat IOAS), EINVAL once a type is chosen; then every
 *   group set on the fd is attached as the legacy container would (its
 *   errors, all or none).
 * - Groups SET_CONTAINER'd later join the backend (its attach errors fail
 *   SET_CONTAINER); devices opened then are not bound to the iommufd: the
 *   group is the backend's, as under a legacy container. The last group
 *   leaving releases the backend; the fd may SET_IOMMU again.
 */
import { fail } from '../../abi/errno.ts';
import type { Group } from '../../iommu/group.ts';
import type { PhysMemory } from '../../iommu/phys-memory.ts';
import type { IommufdCtx, VfioCompatExtension } from '../../iommufd/context.ts';
import type { VfioIommuBackend } from '../container.ts';
import { spaprTceIommuDriver } from './driver.ts';
import type { SpaprTcePersonality } from './personality.ts';

/** A group set on the fd; `busy` when one of its devices is bound to the iommufd. */
interface CompatGroup {
  readonly group: Group;
  readonly busy: () => boolean;
}

/** The groups set on an iommufd context (newest last) and its SPAPR backend. */
interface SpaprCompat {
  readonly groups: CompatGroup[];
  backend: VfioIommuBackend | undefined;
}

const states = new WeakMap<IommufdCtx, SpaprCompat>();

function stateOf(ctx: IommufdCtx): SpaprCompat {
  let st = states.get(ctx);
  if (!st) {
    st = { groups: [], backend: undefined };
    states.set(ctx, st);
  }
  return st;
}

/** The extension a POWER host gives its iommufd contexts (see the module comment). */
export function spaprCompatExtension(host: {
  readonly memory: PhysMemory;
  readonly personality: SpaprTcePersonality;
}): VfioCompatExtension {
  const driver = spaprTceIommuDriver(host);
  return {
    checkExtension: (ext) => driver.checkExtension(ext),
    setIommu(ctx, caller, type) {
      const st = stateOf(ctx);
      if (st.groups.length === 0)
        fail('ENODEV', 'no group set on this iommufd', 'iommufd_vfio_set_iommu');
      if (st.groups.some((g) => g.busy()))
        fail('EBUSY', 'a device is bound to the iommufd', 'iommufd_vfio_set_iommu');
      const backend = driver.open(type, caller);
      const done: Group[] = [];
      try {
        for (const { group } of st.groups) {
          backend.attachGroup(group);
          done.push(group);
        }
      } catch (e) {
        for (const g of done) backend.detachGroup(g);
        backend.release();
        throw e;
      }
      st.backend = backend;
      ctx.vfioCompatBackend = backend;
    },
  };
}

/**
 * GROUP_SET_CONTAINER with an iommufd: remember the group; an active SPAPR
 * backend must accept it (its error fails the call, nothing recorded).
 */
export function spaprCompatAddGroup(ctx: IommufdCtx, group: Group, busy: () => boolean): void {
  const st = stateOf(ctx);
  st.backend?.attachGroup(group);
  st.groups.push({ group, busy });
}

/** The group leaves the fd; the last one releases an active backend. */
export function spaprCompatRemoveGroup(ctx: IommufdCtx, group: Group): void {
  const st = stateOf(ctx);
  const i = st.groups.findIndex((g) => g.group === group);
  if (i < 0) return;
  st.backend?.detachGroup(group);
  st.groups.splice(i, 1);
  if (st.groups.length === 0 && st.backend) {
    st.backend.release();
    st.backend = undefined;
    ctx.vfioCompatBackend = undefined;
  }
}

/** A SPAPR backend serves the fd's container ioctls (its groups are the backend's). */
export function spaprCompatActive(ctx: IommufdCtx): boolean {
  return states.get(ctx)?.backend !== undefined;
}
