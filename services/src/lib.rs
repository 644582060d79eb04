//! Reference services for specwire's task provider.
//!
//! - [`ImageProcessingService`] ([`image_processing`]): the seed's example
//!   service, resizing, filtering and converting real image files.
//! - [`DiagnosticsService`] ([`diagnostics`]): operations that succeed,
//!   echo, sleep or fail on request, for benchmarks, tests and conformance
//!   runs against the reference provider.
//!
//! Both implement [`TaskHandler`]; [`reference_services`] returns them
//! ready to hand to a provider:
//!
//! ```
//! let services = specwire_services::reference_services();
//! let names: Vec<&str> = services
//!     .iter()
//!     .map(|service| service.description().name.as_str())
//!     .collect();
//! assert_eq!(names, ["ImageProcessingService", "DiagnosticsService"]);
//! ```

pub mod diagnostics;
pub mod image_processing;
mod params;

use std::sync::Arc;

use specwire_runtime::task::TaskHandler;

pub use diagnostics::DiagnosticsService;
pub use image_processing::ImageProcessingService;

/// The service-specific `errorCode`s these services use, besides the
/// standard ones in [`specwire_runtime::task::codes`]
/// (`INVALID_PARAMETERS`, `UNKNOWN_OPERATION`, `CANCELLED`, `INTERNAL`).
pub mod codes {
    /// The input file does not exist (or is a directory). The seed's own
    /// example code, with its wording: `Input file not found.` /
    /// `Could not locate '<path>'.`
    pub const FILE_NOT_FOUND: &str = "FILE_NOT_FOUND";
    /// The input file exists but could not be read (permissions, I/O).
    pub const INPUT_NOT_READABLE: &str = "INPUT_NOT_READABLE";
    /// The input is not a PNG, JPEG, BMP or GIF image, is corrupt or
    /// truncated, or is larger than the service decodes.
    pub const INVALID_IMAGE: &str = "INVALID_IMAGE";
    /// The output cannot be written: its directory is missing or not
    /// writable, the path is a directory, or writing failed.
    pub const OUTPUT_NOT_WRITABLE: &str = "OUTPUT_NOT_WRITABLE";
    /// `DiagnosticsService.fail`'s default code.
    pub const SIMULATED_FAILURE: &str = "SIMULATED_FAILURE";
}

/// Both reference services, for a provider to serve (the CLI's
/// `serve task` does).
pub fn reference_services() -> Vec<Arc<dyn TaskHandler>> {
    reference_services_confined(None)
}

/// Both reference services, the image service confined to `files_root`
/// when one is given ([`ImageProcessingService::with_files_root`]).
pub fn reference_services_confined(
    files_root: Option<std::path::PathBuf>,
) -> Vec<Arc<dyn TaskHandler>> {
    let images = match files_root {
        Some(root) => ImageProcessingService::new().with_files_root(root),
        None => ImageProcessingService::new(),
    };
    vec![Arc::new(images), Arc::new(DiagnosticsService::new())]
}
