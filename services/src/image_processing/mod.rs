//! `ImageProcessingService`: the seed's example service (seed 000 §4.3,
//! §5), doing real work on image files with the `image` crate.
//!
//! Operations (the advertised capabilities; every one also takes
//! `inputPath` and `outputPath`, both required strings):
//!
//! | operation | parameters | does |
//! | --- | --- | --- |
//! | `resizeImage` | `width`, `height` (int, required, 1–16384); `filter` (string: `nearest`, `triangle`, `catmullrom`, `gaussian`, `lanczos3`; default `lanczos3`); `keepAspectRatio` (bool, default `false`) | scales to exactly `width`×`height`, or with `keepAspectRatio` to the largest size that fits inside it |
//! | `applyFilter` | `name` (string, required: see [`FILTER_NAMES`]); `size` (float, optional: the filter's strength) | applies one filter |
//! | `convertFormat` | `format` (string: `png`, `jpeg`, `bmp`, `gif`; default from the `outputPath` extension); `quality` (int 1–100, JPEG only, default 90) | re-encodes |
//!
//! `resizeImage` and `applyFilter` write the format the `outputPath`
//! extension names (`.png`, `.jpg`/`.jpeg`, `.bmp`, `.gif`). The input
//! format is recognised from the file's content, not its name.
//!
//! A task reports progress at 10 (decoding), 40 (the operation), 80
//! (encoding) and 95 (saving), checks for cancellation between those
//! stages, and does the work on tokio's blocking pool. The output is written
//! to a temporary file in the output directory and renamed into place at the
//! end, so a failed or cancelled task never leaves a partial output file.
//!
//! `resultData`:
//!
//! ```json
//! {"outputImagePath": "/data/out.jpg", "format": "jpeg", "width": 1024, "height": 768,
//!  "inputFormat": "png", "inputWidth": 4000, "inputHeight": 3000, "bytesWritten": 183411,
//!  "filter": "lanczos3", "quality": 90, "executionDurationMs": 412}
//! ```
//!
//! `filter` is there for `resizeImage` (the resampling filter) and
//! `applyFilter` (the filter's name, with its `size` when it takes one);
//! `quality` whenever the output is JPEG. The seed's `processedByServiceId`
//! is not known to a handler; a provider may add it.
//!
//! Errors (`TaskFailed.errorCode`): `FILE_NOT_FOUND` (the input is missing,
//! worded as the seed's example), `INPUT_NOT_READABLE`, `INVALID_IMAGE` (not
//! a PNG/JPEG/BMP/GIF image, corrupt, or larger than 16384 pixels a side or
//! 512 MiB decoded), `OUTPUT_NOT_WRITABLE` (missing output directory, no
//! permission, the path is a directory), `INVALID_PARAMETERS` (a value out of
//! range, an unknown filter or format, or an output too large), `INTERNAL`.
//!
//! ```no_run
//! use specwire_runtime::task::{Task, TaskContext, TaskHandler};
//! use specwire_services::ImageProcessingService;
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn example() {
//! let service = ImageProcessingService::new();
//! let (progress, _reports) = tokio::sync::mpsc::unbounded_channel();
//! let task = Task {
//!     task_id: "t1".into(),
//!     operation: "resizeImage".into(),
//!     parameters: serde_json::json!({
//!         "inputPath": "in.png", "outputPath": "out.jpg", "width": 64, "height": 48
//!     })
//!     .as_object()
//!     .cloned()
//!     .unwrap_or_default(),
//!     client_id: None,
//! };
//! let result = service
//!     .run(task, TaskContext::new(progress, CancellationToken::new()))
//!     .await;
//! match result {
//!     Ok(data) => println!("wrote {}", data["outputImagePath"]),
//!     Err(error) => println!("failed: {error}"),
//! }
//! # }
//! ```

mod output;

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use image::codecs::bmp::BmpEncoder;
use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::imageops::FilterType;
use image::{ColorType, DynamicImage, ImageError, ImageReader, Limits};
use serde_json::{json, Map, Value};
use specwire_runtime::task::{
    codes as standard, BoxFuture, Operation, ParamType, Parameter, ServiceDescription, Task,
    TaskContext, TaskError, TaskHandler, TaskOutput,
};
use tokio_util::sync::CancellationToken;

use self::output::AtomicOutput;
use crate::{codes, params};

/// The advertised `serviceName`.
pub const SERVICE_NAME: &str = "ImageProcessingService";

/// The advertised `serviceVersion` (the seed's).
pub const SERVICE_VERSION: &str = "1.2.0";

/// The largest width or height accepted, for input images and for
/// `resizeImage`.
pub const MAX_DIMENSION: u32 = 16_384;

/// The most pixels an output image may have (64 Mi, e.g. 8192×8192), so a
/// single task cannot ask for gigabytes of memory.
pub const MAX_OUTPUT_PIXELS: u64 = 1 << 26;

/// The most memory the decoder may allocate for one input image.
pub const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;

/// The JPEG quality used when a task does not give one.
pub const DEFAULT_JPEG_QUALITY: u8 = 90;

/// The resampling filter `resizeImage` uses when a task does not give one:
/// Lanczos3 gives the sharpest results of the five at a moderate cost,
/// which suits a service whose output people look at.
pub const DEFAULT_RESIZE_FILTER: &str = "lanczos3";

/// The names `applyFilter` accepts as `name`.
pub const FILTER_NAMES: &[&str] = &[
    "blur",
    "sharpen",
    "grayscale",
    "invert",
    "brighten",
    "contrast",
    "huerotate",
    "fliph",
    "flipv",
    "rotate90",
    "rotate180",
    "rotate270",
];

/// The image crate's resize samples columns into an RGBA f32 buffer of
/// input width × output height (16 bytes a pixel) before sampling rows;
/// this bounds that buffer.
const MAX_RESIZE_WORK_BYTES: u64 = 1 << 30;

/// Progress at the start of each stage; strictly increasing.
const PROGRESS_DECODING: u8 = 10;
const PROGRESS_PROCESSING: u8 = 40;
const PROGRESS_ENCODING: u8 = 80;
const PROGRESS_SAVING: u8 = 95;

/// The GIF encoder's quantiser speed (1–30): its own default, 1, is very
/// slow on large images for little visible gain.
const GIF_SPEED: i32 = 10;

/// The reference image service. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct ImageProcessingService {
    description: ServiceDescription,
    /// When set, every path must lie inside it (relative ones are taken
    /// from it).
    files_root: Option<PathBuf>,
}

impl ImageProcessingService {
    /// The service with its three operations.
    pub fn new() -> Self {
        let paths = |operation: Operation| {
            operation
                .parameter(Parameter::required("inputPath", ParamType::String))
                .parameter(Parameter::required("outputPath", ParamType::String))
        };
        let description = ServiceDescription::new(SERVICE_NAME, SERVICE_VERSION)
            .operation(
                paths(Operation::new("resizeImage"))
                    .parameter(Parameter::required("width", ParamType::Int))
                    .parameter(Parameter::required("height", ParamType::Int))
                    .parameter(Parameter::optional("filter", ParamType::String))
                    .parameter(Parameter::optional("keepAspectRatio", ParamType::Bool)),
            )
            .operation(
                paths(Operation::new("applyFilter"))
                    .parameter(Parameter::required("name", ParamType::String))
                    .parameter(Parameter::optional("size", ParamType::Float)),
            )
            .operation(
                paths(Operation::new("convertFormat"))
                    .parameter(Parameter::optional("format", ParamType::String))
                    .parameter(Parameter::optional("quality", ParamType::Int)),
            );
        ImageProcessingService {
            description,
            files_root: None,
        }
    }

    /// Confines `inputPath` and `outputPath` to `root`: relative paths are
    /// taken from it, and a path that resolves outside it (through `..` or
    /// a symbolic link) fails with `FORBIDDEN`. Without a root, the service
    /// reads and writes wherever the provider's user may, as in the seed.
    pub fn with_files_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.files_root = Some(root.into());
        self
    }

    /// Resolves the job's paths against the files root, if there is one.
    fn confine(&self, job: &mut Job) -> Result<(), TaskError> {
        let Some(root) = &self.files_root else {
            return Ok(());
        };
        let root = root.canonicalize().map_err(|error| {
            TaskError::internal(format!(
                "the files root {} is unusable: {error}",
                root.display()
            ))
        })?;
        let outside = |name: &str, path: &Path| {
            TaskError::new(
                standard::FORBIDDEN,
                format!("`{name}` is outside the directory this provider serves"),
            )
            .with_details(format!("'{}' is not under the files root.", path.display()))
        };
        let input = root.join(&job.input);
        match input.canonicalize() {
            Ok(resolved) if resolved.starts_with(&root) => job.input = resolved,
            Ok(_) => return Err(outside("inputPath", &job.input)),
            // Missing: the job reports FILE_NOT_FOUND with the path as given,
            // unless the path already climbs out lexically.
            Err(_)
                if job
                    .input
                    .components()
                    .any(|c| c == std::path::Component::ParentDir) =>
            {
                return Err(outside("inputPath", &job.input))
            }
            Err(_) => job.input = input,
        }
        let output = root.join(&job.output);
        let (Some(parent), Some(name)) = (output.parent(), output.file_name()) else {
            return Err(outside("outputPath", &job.output));
        };
        match parent.canonicalize() {
            Ok(resolved) if resolved.starts_with(&root) => {
                let target = resolved.join(name);
                // An existing symbolic link would be replaced, not followed,
                // by the rename; still refuse one that points outside.
                if let Ok(existing) = target.canonicalize() {
                    if !existing.starts_with(&root) {
                        return Err(outside("outputPath", &job.output));
                    }
                }
                job.output = target;
            }
            Ok(_) => return Err(outside("outputPath", &job.output)),
            Err(_)
                if job
                    .output
                    .components()
                    .any(|c| c == std::path::Component::ParentDir) =>
            {
                return Err(outside("outputPath", &job.output))
            }
            // A missing directory: the job reports OUTPUT_NOT_WRITABLE.
            Err(_) => job.output = output,
        }
        Ok(())
    }
}

impl Default for ImageProcessingService {
    fn default() -> Self {
        Self::new()
    }
}

impl TaskHandler for ImageProcessingService {
    fn description(&self) -> &ServiceDescription {
        &self.description
    }

    fn run(&self, task: Task, context: TaskContext) -> BoxFuture<Result<TaskOutput, TaskError>> {
        let job = Job::parse(&task.operation, &task.parameters).and_then(|mut job| {
            self.confine(&mut job)?;
            Ok(job)
        });
        Box::pin(async move {
            let started = Instant::now();
            let job = job?;
            if context.is_cancelled() {
                return Err(TaskError::cancelled());
            }
            tracing::debug!(task_id = %task.task_id, operation = %task.operation, "image task started");

            // The blocking job watches a child token: cancelled with the
            // task's, and also when this future is dropped (the guard), so
            // work nobody waits for stops at its next stage.
            let token = context.cancellation().child_token();
            let _stop_when_dropped = token.clone().drop_guard();
            let reporter = context.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                job.execute(
                    &|percent, message| reporter.progress(percent, message),
                    &token,
                )
            })
            .await;
            // Waiting for the job even after a cancellation means that, when
            // this returns, the temporary file is gone and the output is
            // either untouched or complete.
            let mut data = match outcome {
                Ok(result) => result?,
                Err(error) if error.is_panic() => {
                    tracing::error!(task_id = %task.task_id, "image processing panicked");
                    return Err(TaskError::internal("image processing failed unexpectedly"));
                }
                Err(_) => return Err(TaskError::cancelled()),
            };
            let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            data.insert("executionDurationMs".into(), elapsed.into());
            tracing::debug!(task_id = %task.task_id, elapsed_ms = elapsed, "image task completed");
            Ok(data)
        })
    }
}

/// An output (and `convertFormat`) format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Png,
    Jpeg,
    Bmp,
    Gif,
}

impl Format {
    const NAMES: &'static str = "png, jpeg, bmp, gif";

    fn from_name(name: &str) -> Option<Format> {
        match name.to_ascii_lowercase().as_str() {
            "png" => Some(Format::Png),
            "jpeg" | "jpg" => Some(Format::Jpeg),
            "bmp" => Some(Format::Bmp),
            "gif" => Some(Format::Gif),
            _ => None,
        }
    }

    fn from_path(path: &Path) -> Option<Format> {
        Format::from_name(path.extension()?.to_str()?)
    }

    fn name(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Jpeg => "jpeg",
            Format::Bmp => "bmp",
            Format::Gif => "gif",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `resizeImage`'s resampling filters, by advertised name.
const RESAMPLE_FILTERS: &[(&str, FilterType)] = &[
    ("nearest", FilterType::Nearest),
    ("triangle", FilterType::Triangle),
    ("catmullrom", FilterType::CatmullRom),
    ("gaussian", FilterType::Gaussian),
    ("lanczos3", FilterType::Lanczos3),
];

/// `applyFilter`'s filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Filter {
    Blur,
    Sharpen,
    Grayscale,
    Invert,
    Brighten,
    Contrast,
    HueRotate,
    FlipH,
    FlipV,
    Rotate90,
    Rotate180,
    Rotate270,
}

/// What `size` means for a filter that takes one.
struct Strength {
    default: f64,
    min: f64,
    max: f64,
}

impl Filter {
    fn from_name(name: &str) -> Option<Filter> {
        Some(match name.to_ascii_lowercase().as_str() {
            "blur" => Filter::Blur,
            // `unsharpen` is the image crate's name for it.
            "sharpen" | "unsharpen" => Filter::Sharpen,
            "grayscale" | "greyscale" => Filter::Grayscale,
            "invert" => Filter::Invert,
            "brighten" => Filter::Brighten,
            "contrast" => Filter::Contrast,
            "huerotate" => Filter::HueRotate,
            "fliph" => Filter::FlipH,
            "flipv" => Filter::FlipV,
            "rotate90" => Filter::Rotate90,
            "rotate180" => Filter::Rotate180,
            "rotate270" => Filter::Rotate270,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Filter::Blur => "blur",
            Filter::Sharpen => "sharpen",
            Filter::Grayscale => "grayscale",
            Filter::Invert => "invert",
            Filter::Brighten => "brighten",
            Filter::Contrast => "contrast",
            Filter::HueRotate => "huerotate",
            Filter::FlipH => "fliph",
            Filter::FlipV => "flipv",
            Filter::Rotate90 => "rotate90",
            Filter::Rotate180 => "rotate180",
            Filter::Rotate270 => "rotate270",
        }
    }

    /// The meaning of `size`: blur and sharpen take the Gaussian sigma in
    /// pixels (capped because the cost grows with it), brighten the amount
    /// added to each channel, contrast a percentage, huerotate degrees. The
    /// others ignore `size`.
    fn strength(self) -> Option<Strength> {
        let (default, min, max) = match self {
            Filter::Blur => (2.0, 0.1, 50.0),
            Filter::Sharpen => (1.0, 0.1, 50.0),
            Filter::Brighten => (20.0, -255.0, 255.0),
            Filter::Contrast => (20.0, -100.0, 100.0),
            Filter::HueRotate => (90.0, -360.0, 360.0),
            _ => return None,
        };
        Some(Strength { default, min, max })
    }

    fn apply(self, image: DynamicImage, size: f64) -> DynamicImage {
        // Sizes were range-checked, so the casts below cannot saturate.
        match self {
            Filter::Blur => image.blur(size as f32),
            // Threshold 0: sharpen every edge, however faint.
            Filter::Sharpen => image.unsharpen(size as f32, 0),
            Filter::Grayscale => image.grayscale(),
            Filter::Invert => {
                let mut image = image;
                image.invert();
                image
            }
            Filter::Brighten => image.brighten(size.round() as i32),
            Filter::Contrast => image.adjust_contrast(size as f32),
            Filter::HueRotate => image.huerotate(size.round() as i32),
            Filter::FlipH => image.fliph(),
            Filter::FlipV => image.flipv(),
            Filter::Rotate90 => image.rotate90(),
            Filter::Rotate180 => image.rotate180(),
            Filter::Rotate270 => image.rotate270(),
        }
    }
}

/// What a task asks for, checked before any file is touched.
#[derive(Debug)]
struct Job {
    input: PathBuf,
    output: PathBuf,
    /// `outputPath` as the client wrote it, echoed in `outputImagePath`.
    output_text: String,
    format: Format,
    /// JPEG quality (JPEG output only).
    quality: Option<u8>,
    step: Step,
}

#[derive(Debug)]
enum Step {
    Resize {
        width: u32,
        height: u32,
        filter: (&'static str, FilterType),
        keep_aspect_ratio: bool,
    },
    Filter {
        filter: Filter,
        size: Option<f64>,
    },
    Convert,
}

impl Job {
    fn parse(operation: &str, parameters: &Map<String, Value>) -> Result<Job, TaskError> {
        let unknown = || {
            TaskError::new(
                standard::UNKNOWN_OPERATION,
                format!("{SERVICE_NAME} has no operation `{operation}`"),
            )
        };
        // Before the parameters, which an unknown operation may lack.
        if !matches!(operation, "resizeImage" | "applyFilter" | "convertFormat") {
            return Err(unknown());
        }
        let input = params::required_string(parameters, "inputPath")?;
        let output = params::required_string(parameters, "outputPath")?;
        let output_path = PathBuf::from(output);
        let extension_format = || {
            Format::from_path(&output_path).ok_or_else(|| {
                TaskError::invalid_parameters(format!(
                    "the extension of `outputPath` must name a supported format ({})",
                    Format::NAMES
                ))
                .with_details(format!("'{output}' has no supported extension."))
            })
        };
        let dimension = 1..=i64::from(MAX_DIMENSION);
        let (step, format, quality) = match operation {
            "resizeImage" => {
                // In range, so the casts to u32 are exact.
                let width = params::required_int_in(parameters, "width", dimension.clone())?;
                let height = params::required_int_in(parameters, "height", dimension)?;
                let filter = match params::string(parameters, "filter")? {
                    None => resample_filter(DEFAULT_RESIZE_FILTER),
                    Some(name) => resample_filter(name),
                }
                .ok_or_else(|| {
                    let names: Vec<&str> = RESAMPLE_FILTERS.iter().map(|(name, _)| *name).collect();
                    TaskError::invalid_parameters(format!(
                        "parameter `filter` must be one of {}",
                        names.join(", ")
                    ))
                })?;
                let keep_aspect_ratio =
                    params::boolean(parameters, "keepAspectRatio")?.unwrap_or(false);
                if !keep_aspect_ratio {
                    // Known now: refuse before decoding anything.
                    check_output_size(width as u32, height as u32)?;
                }
                let step = Step::Resize {
                    width: width as u32,
                    height: height as u32,
                    filter,
                    keep_aspect_ratio,
                };
                (step, extension_format()?, None)
            }
            "applyFilter" => {
                let name = params::required_string(parameters, "name")?;
                let filter = Filter::from_name(name).ok_or_else(|| {
                    TaskError::invalid_parameters(format!(
                        "unknown filter `{name}`; known filters: {}",
                        FILTER_NAMES.join(", ")
                    ))
                })?;
                let size = match filter.strength() {
                    Some(strength) => Some(
                        params::float_in(parameters, "size", strength.min..=strength.max)?
                            .unwrap_or(strength.default),
                    ),
                    None => None,
                };
                (Step::Filter { filter, size }, extension_format()?, None)
            }
            "convertFormat" => {
                let format = match params::string(parameters, "format")? {
                    Some(name) => Format::from_name(name).ok_or_else(|| {
                        TaskError::invalid_parameters(format!(
                            "unsupported format `{name}`; supported: {}",
                            Format::NAMES
                        ))
                    })?,
                    None => extension_format()?,
                };
                let quality = params::int_in(parameters, "quality", 1..=100)?;
                if quality.is_some() && format != Format::Jpeg {
                    tracing::debug!(%format, "`quality` ignored: it applies to JPEG only");
                }
                (Step::Convert, format, quality.map(|q| q as u8))
            }
            _ => return Err(unknown()),
        };
        let quality = (format == Format::Jpeg).then(|| quality.unwrap_or(DEFAULT_JPEG_QUALITY));
        Ok(Job {
            input: PathBuf::from(input),
            output: output_path,
            output_text: output.to_owned(),
            format,
            quality,
            step,
        })
    }

    /// Runs the job on the current (blocking) thread. `report` gets the
    /// progress; `cancel` is checked between stages.
    fn execute(
        self,
        report: &dyn Fn(u8, String),
        cancel: &CancellationToken,
    ) -> Result<TaskOutput, TaskError> {
        let stop_if_cancelled = || {
            if cancel.is_cancelled() {
                Err(TaskError::cancelled())
            } else {
                Ok(())
            }
        };
        // Input first, so a task naming a missing input gets
        // FILE_NOT_FOUND whatever its output path (as in the seed's example).
        let input = open_input(&self.input)?;
        let mut output = AtomicOutput::create(&self.output)?;
        stop_if_cancelled()?;

        report(PROGRESS_DECODING, "decoding input image".into());
        let (image, input_format) = decode(input, &self.input)?;
        let (input_width, input_height) = (image.width(), image.height());
        stop_if_cancelled()?;

        // Operation-specific result fields, added after the common ones.
        let mut extra = Map::new();
        let image = match self.step {
            Step::Resize {
                width,
                height,
                filter: (filter_name, filter),
                keep_aspect_ratio,
            } => {
                let (width, height) = if keep_aspect_ratio {
                    fit_within(input_width, input_height, width, height)
                } else {
                    (width, height)
                };
                check_output_size(width, height)?;
                let work = u64::from(input_width) * u64::from(height) * 16;
                if work > MAX_RESIZE_WORK_BYTES {
                    return Err(TaskError::invalid_parameters(
                        "resizing this image to this height needs too much memory",
                    )
                    .with_details(format!(
                        "{input_width}×{input_height} to {width}×{height} needs {} MiB of working memory; at most {} MiB.",
                        work >> 20,
                        MAX_RESIZE_WORK_BYTES >> 20
                    )));
                }
                report(
                    PROGRESS_PROCESSING,
                    format!("resizing to {width}×{height} ({filter_name})"),
                );
                extra.insert("filter".into(), filter_name.into());
                image.resize_exact(width, height, filter)
            }
            Step::Filter { filter, size } => {
                report(PROGRESS_PROCESSING, format!("applying {}", filter.name()));
                extra.insert("filter".into(), filter.name().into());
                if let Some(size) = size {
                    extra.insert("size".into(), json!(size));
                }
                filter.apply(image, size.unwrap_or(0.0))
            }
            Step::Convert => {
                report(
                    PROGRESS_PROCESSING,
                    format!("converting {} to {}", input_format, self.format),
                );
                image
            }
        };
        stop_if_cancelled()?;

        report(PROGRESS_ENCODING, format!("encoding {}", self.format));
        encode(&image, self.format, self.quality, output.writer()?)?;
        stop_if_cancelled()?;

        report(PROGRESS_SAVING, "saving output image".into());
        // The last check before the rename: a cancellation arriving after
        // it finds the output already in place.
        stop_if_cancelled()?;
        let bytes_written = output.commit()?;

        let mut data = Map::new();
        data.insert("outputImagePath".into(), self.output_text.into());
        data.insert("format".into(), self.format.name().into());
        data.insert("width".into(), image.width().into());
        data.insert("height".into(), image.height().into());
        data.insert("inputFormat".into(), input_format.into());
        data.insert("inputWidth".into(), input_width.into());
        data.insert("inputHeight".into(), input_height.into());
        data.insert("bytesWritten".into(), bytes_written.into());
        data.append(&mut extra);
        if let Some(quality) = self.quality {
            data.insert("quality".into(), quality.into());
        }
        Ok(data)
    }
}

fn resample_filter(name: &str) -> Option<(&'static str, FilterType)> {
    let name = name.to_ascii_lowercase();
    RESAMPLE_FILTERS
        .iter()
        .find(|(known, _)| *known == name)
        .copied()
}

/// The largest size with the input's aspect ratio that fits in
/// `width`×`height` (at least 1×1).
fn fit_within(input_width: u32, input_height: u32, width: u32, height: u32) -> (u32, u32) {
    if input_width == 0 || input_height == 0 {
        return (width, height);
    }
    let ratio = (f64::from(width) / f64::from(input_width))
        .min(f64::from(height) / f64::from(input_height));
    let scale = |side: u32, bound: u32| {
        // Finite and at most `bound` (≤ MAX_DIMENSION), so the cast is exact.
        ((f64::from(side) * ratio).round() as u32).clamp(1, bound)
    };
    (scale(input_width, width), scale(input_height, height))
}

fn check_output_size(width: u32, height: u32) -> Result<(), TaskError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > MAX_OUTPUT_PIXELS {
        return Err(
            TaskError::invalid_parameters("the output image would be too large").with_details(
                format!("{width}×{height} is {pixels} pixels; at most {MAX_OUTPUT_PIXELS}."),
            ),
        );
    }
    Ok(())
}

fn open_input(path: &Path) -> Result<File, TaskError> {
    let not_found = || {
        TaskError::new(codes::FILE_NOT_FOUND, "Input file not found.")
            .with_details(format!("Could not locate '{}'.", path.display()))
    };
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_dir() => {
            return Err(
                TaskError::new(codes::FILE_NOT_FOUND, "Input file not found.")
                    .with_details(format!("'{}' is a directory.", path.display())),
            )
        }
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Err(not_found()),
        Err(error) => return Err(not_readable(path, &error)),
    }
    File::open(path).map_err(|error| match error.kind() {
        // Removed between the two calls.
        io::ErrorKind::NotFound => not_found(),
        _ => not_readable(path, &error),
    })
}

fn not_readable(path: &Path, error: &io::Error) -> TaskError {
    TaskError::new(codes::INPUT_NOT_READABLE, "Input file could not be read.")
        .with_details(format!("Could not read '{}': {error}.", path.display()))
}

fn invalid_image(message: &str, path: &Path, error: impl fmt::Display) -> TaskError {
    TaskError::new(codes::INVALID_IMAGE, message)
        .with_details(format!("'{}': {error}.", path.display()))
}

/// Decodes `file`, recognising its format from its content, within
/// [`MAX_DIMENSION`] and [`MAX_DECODE_BYTES`]: the limits are checked
/// against the header before the pixel buffer is allocated.
fn decode(file: File, path: &Path) -> Result<(DynamicImage, &'static str), TaskError> {
    let mut reader = ImageReader::new(BufReader::new(file))
        .with_guessed_format()
        .map_err(|error| not_readable(path, &error))?;
    let Some(format) = reader.format() else {
        return Err(invalid_image(
            "Input file is not a supported image.",
            path,
            "not a PNG, JPEG, BMP or GIF image",
        ));
    };
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let image = reader.decode().map_err(|error| match error {
        ImageError::Limits(_) => invalid_image("Input image is too large.", path, error),
        ImageError::Unsupported(_) => {
            invalid_image("Input image format is not supported.", path, error)
        }
        // Truncated or garbled data surfaces as an I/O error from the codec.
        ImageError::IoError(ref io_error)
            if !matches!(
                io_error.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData
            ) =>
        {
            not_readable(path, io_error)
        }
        _ => invalid_image("Input file is not a valid image.", path, error),
    })?;
    let name = match format {
        image::ImageFormat::Png => "png",
        image::ImageFormat::Jpeg => "jpeg",
        image::ImageFormat::Bmp => "bmp",
        image::ImageFormat::Gif => "gif",
        other => other.extensions_str().first().copied().unwrap_or("unknown"),
    };
    Ok((image, name))
}

/// Encodes `image` as `format`, first converting it to a color type the
/// encoder takes (JPEG has no alpha, GIF only 8-bit RGB(A), and none of
/// them floating point), so no input fails at this stage.
fn encode(
    image: &DynamicImage,
    format: Format,
    quality: Option<u8>,
    writer: &mut impl Write,
) -> Result<(), TaskError> {
    let color = image.color();
    let converted: Option<DynamicImage> = match format {
        Format::Png => match color {
            ColorType::Rgb32F => Some(image.to_rgb16().into()),
            ColorType::Rgba32F => Some(image.to_rgba16().into()),
            _ => None,
        },
        Format::Jpeg => match color {
            ColorType::L8 | ColorType::Rgb8 => None,
            ColorType::L16 | ColorType::La8 | ColorType::La16 => Some(image.to_luma8().into()),
            _ => Some(image.to_rgb8().into()),
        },
        Format::Bmp => match color {
            ColorType::L8 | ColorType::La8 | ColorType::Rgb8 | ColorType::Rgba8 => None,
            _ if color.has_alpha() => Some(image.to_rgba8().into()),
            _ => Some(image.to_rgb8().into()),
        },
        Format::Gif => match color {
            ColorType::Rgb8 | ColorType::Rgba8 => None,
            _ if color.has_alpha() => Some(image.to_rgba8().into()),
            _ => Some(image.to_rgb8().into()),
        },
    };
    let image = converted.as_ref().unwrap_or(image);
    let result = match format {
        Format::Png => image.write_with_encoder(PngEncoder::new(&mut *writer)),
        Format::Jpeg => image.write_with_encoder(JpegEncoder::new_with_quality(
            &mut *writer,
            quality.unwrap_or(DEFAULT_JPEG_QUALITY),
        )),
        Format::Bmp => image.write_with_encoder(BmpEncoder::new(&mut *writer)),
        Format::Gif => {
            image.write_with_encoder(GifEncoder::new_with_speed(&mut *writer, GIF_SPEED))
        }
    };
    result.map_err(|error| match error {
        ImageError::IoError(io_error) => {
            TaskError::new(codes::OUTPUT_NOT_WRITABLE, "Output path is not writable.")
                .with_details(format!("Could not write the output image: {io_error}."))
        }
        other => TaskError::internal(format!("could not encode the output image as {format}"))
            .with_details(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn params(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    fn write_png(path: &Path, width: u32, height: u32) {
        let image = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
        });
        image.save(path).unwrap();
    }

    /// Cancelling from inside a stage's progress report is deterministic:
    /// the report runs on the job's own thread, before the next check.
    #[test]
    fn cancelling_at_any_stage_leaves_no_file() {
        for stage in [
            PROGRESS_DECODING,
            PROGRESS_PROCESSING,
            PROGRESS_ENCODING,
            PROGRESS_SAVING,
        ] {
            let dir = specwire_testsupport::temp_dir();
            let input = dir.path().join("in.png");
            write_png(&input, 32, 16);
            let output = dir.path().join("out.jpg");
            let job = Job::parse(
                "resizeImage",
                &params(json!({
                    "inputPath": input.to_str().unwrap(),
                    "outputPath": output.to_str().unwrap(),
                    "width": 8, "height": 4
                })),
            )
            .unwrap();
            let cancel = CancellationToken::new();
            let seen = Mutex::new(Vec::new());
            let result = job.execute(
                &|percent, _| {
                    seen.lock().unwrap().push(percent);
                    if percent == stage {
                        cancel.cancel();
                    }
                },
                &cancel,
            );
            assert_eq!(result.unwrap_err(), TaskError::cancelled(), "stage {stage}");
            assert_eq!(seen.lock().unwrap().last(), Some(&stage));
            let names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|entry| entry.unwrap().file_name())
                .collect();
            assert_eq!(
                names,
                vec![std::ffi::OsString::from("in.png")],
                "stage {stage}"
            );
        }
    }

    #[test]
    fn fit_within_keeps_the_aspect_ratio() {
        assert_eq!(fit_within(400, 200, 100, 100), (100, 50));
        assert_eq!(fit_within(200, 400, 100, 100), (50, 100));
        assert_eq!(fit_within(10, 10, 30, 20), (20, 20));
        assert_eq!(fit_within(16_384, 1, 100, 100), (100, 1));
        assert_eq!(fit_within(3, 2, 1, 1), (1, 1));
    }

    #[test]
    fn every_filter_name_parses_and_round_trips() {
        for name in FILTER_NAMES {
            let filter = Filter::from_name(name).unwrap();
            assert_eq!(filter.name(), *name);
        }
        assert_eq!(Filter::from_name("unsharpen"), Some(Filter::Sharpen));
        assert_eq!(Filter::from_name("emboss"), None);
    }

    #[test]
    fn every_filter_survives_tiny_and_odd_images() {
        let images = [
            DynamicImage::new_rgb8(1, 1),
            DynamicImage::new_luma8(1, 7),
            DynamicImage::new_rgba16(5, 1),
            DynamicImage::new_luma_a8(3, 2),
        ];
        for image in images {
            for name in FILTER_NAMES {
                let filter = Filter::from_name(name).unwrap();
                for size in filter
                    .strength()
                    .map(|s| vec![s.min, s.default, s.max])
                    .unwrap_or(vec![0.0])
                {
                    let out = filter.apply(image.clone(), size);
                    for format in [Format::Png, Format::Jpeg, Format::Bmp, Format::Gif] {
                        let mut bytes = Vec::new();
                        encode(&out, format, Some(50), &mut bytes)
                            .unwrap_or_else(|e| panic!("{name} {size} {format}: {e}"));
                        assert!(!bytes.is_empty());
                    }
                }
            }
        }
    }
}
