// What every test's fake CUDA addon shares: the build information and the device list (or the
// error listing the devices throws). Subclasses add the libraries, models and collectives they fake.
import type { NativeDevice } from '../../runtime/engine/cuda/addon-api.js';

export abstract class FakeAddonBase {
  constructor(private readonly devicesOrError: NativeDevice[] | Error) {}

  buildInfo() {
    return { version: 'test', cudaRuntime: 13000, architectures: ['sm_90'] };
  }

  devices(): NativeDevice[] {
    if (this.devicesOrError instanceof Error) throw this.devicesOrError;
    return this.devicesOrError;
  }
}
