//! Which libtorch device a run uses and how it is named in `meta.json` and the log.

use crate::config::DeviceChoice;
use crate::TrainError;
use tch::Device;

/// Pick the device the config asks for.
pub fn choose_device(choice: DeviceChoice) -> Result<Device, TrainError> {
    match choice {
        DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda => {
            if tch::Cuda::is_available() {
                Ok(Device::Cuda(0))
            } else {
                Err(TrainError::Device(
                    "train.device = \"cuda\" but no CUDA device is available (use \"auto\" or \"cpu\")".into(),
                ))
            }
        }
    }
}

pub(crate) fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// libtorch's CPU threads for `train.threads`: the number asked for, 0 = every core.
pub(crate) fn thread_count(threads: usize) -> usize {
    if threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        threads
    }
}
