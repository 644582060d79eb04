//! ImageProcessingService on real files: each operation end to end, its
//! errors, cancellation and hostile input.

mod common;

use std::path::Path;

use common::{files, path_str, task, write_png};
use image::{GenericImageView, ImageFormat, ImageReader};
use serde_json::{json, Value};
use specwire_runtime::task::{codes as standard, TaskError, TaskHandler};
use specwire_services::codes;
use specwire_services::ImageProcessingService;
use specwire_testsupport::within_for;
use tokio_util::sync::CancellationToken;

/// The format and size of the image at `path`, recognised from its content.
fn probe(path: &Path) -> (ImageFormat, u32, u32) {
    let reader = ImageReader::open(path)
        .unwrap()
        .with_guessed_format()
        .unwrap();
    let format = reader.format().expect("a known format");
    let image = reader.decode().unwrap();
    (format, image.width(), image.height())
}

/// A temp dir with a 200×100 gradient PNG called `in.png`.
fn fixture() -> (specwire_testsupport::TempDir, String) {
    let dir = specwire_testsupport::temp_dir();
    let input = dir.path().join("in.png");
    write_png(&input, 200, 100);
    let input = path_str(&input).to_owned();
    (dir, input)
}

#[tokio::test]
async fn resize_writes_the_requested_size_in_the_extension_format() {
    let (dir, input) = fixture();
    let output = dir.path().join("out.jpg");
    let service = ImageProcessingService::new();
    let run = common::run(
        &service,
        task(
            "resizeImage",
            json!({"inputPath": input, "outputPath": path_str(&output), "width": 64, "height": 48}),
        ),
    )
    .await;
    let data = run.ok();
    assert_eq!(probe(&output), (ImageFormat::Jpeg, 64, 48));
    run.assert_progress(3);
    assert_eq!(data["outputImagePath"], path_str(&output));
    assert_eq!(data["format"], "jpeg");
    assert_eq!(
        (data["width"].clone(), data["height"].clone()),
        (json!(64), json!(48))
    );
    assert_eq!(data["inputFormat"], "png");
    assert_eq!(data["inputWidth"], 200);
    assert_eq!(data["inputHeight"], 100);
    assert_eq!(data["filter"], "lanczos3");
    assert_eq!(data["quality"], 90);
    let size = std::fs::metadata(&output).unwrap().len();
    assert_eq!(data["bytesWritten"], size);
    assert!(data["executionDurationMs"].is_u64(), "{data:?}");
    assert!(!data.contains_key("processedByServiceId"));
    assert_eq!(
        files(dir.path()),
        ["in.png", "out.jpg"],
        "no temporary file left"
    );
}

#[tokio::test]
async fn resize_can_keep_the_aspect_ratio_and_use_every_filter() {
    let (dir, input) = fixture();
    let service = ImageProcessingService::new();
    for filter in [
        "nearest",
        "triangle",
        "catmullrom",
        "gaussian",
        "lanczos3",
        "Triangle",
    ] {
        let output = dir.path().join(format!("{filter}.png"));
        let run = common::run(
            &service,
            task(
                "resizeImage",
                json!({"inputPath": input, "outputPath": path_str(&output), "width": 50,
                       "height": 50, "filter": filter, "keepAspectRatio": true}),
            ),
        )
        .await;
        assert_eq!(run.ok()["filter"], filter.to_ascii_lowercase());
        assert_eq!(probe(&output), (ImageFormat::Png, 50, 25), "{filter}");
    }
}

#[tokio::test]
async fn apply_filter_changes_pixels_as_named() {
    let (dir, input) = fixture();
    let original = image::open(&input).unwrap().to_rgb8();
    let service = ImageProcessingService::new();
    let apply = |name: &'static str, size: Option<f64>| {
        let output = dir.path().join(format!("{name}.png"));
        let mut parameters =
            json!({"inputPath": input, "outputPath": path_str(&output), "name": name});
        if let Some(size) = size {
            parameters["size"] = json!(size);
        }
        let service = service.clone();
        async move {
            let run = common::run(&service, task("applyFilter", parameters)).await;
            run.assert_progress(3);
            let data = run.ok().clone();
            (data, image::open(&output).unwrap())
        }
    };

    let (data, inverted) = apply("invert", None).await;
    assert_eq!(data["filter"], "invert");
    assert!(!data.contains_key("size"), "invert takes no size");
    let inverted = inverted.to_rgb8();
    let (p, q) = (original.get_pixel(13, 7), inverted.get_pixel(13, 7));
    assert_eq!(q.0, [255 - p[0], 255 - p[1], 255 - p[2]]);

    let (_, flipped) = apply("fliph", None).await;
    assert_eq!(
        flipped.to_rgb8().get_pixel(0, 5),
        original.get_pixel(199, 5)
    );

    let (data, rotated) = apply("rotate90", None).await;
    assert_eq!(rotated.dimensions(), (100, 200));
    assert_eq!(
        (data["width"].clone(), data["height"].clone()),
        (json!(100), json!(200))
    );

    let (_, gray) = apply("grayscale", None).await;
    assert_eq!(gray.color().channel_count(), 1, "grayscale PNG");

    let (data, _) = apply("blur", None).await;
    assert_eq!(data["size"], 2.0, "the default sigma is reported");
    let (data, _) = apply("brighten", Some(40.0)).await;
    assert_eq!(data["size"], 40.0);

    for name in [
        "sharpen",
        "contrast",
        "huerotate",
        "flipv",
        "rotate180",
        "rotate270",
    ] {
        let (data, image) = apply(name, None).await;
        assert_eq!(data["filter"], name);
        assert_eq!(image.width() * image.height(), 200 * 100);
    }
}

#[tokio::test]
async fn convert_format_follows_the_parameter_or_the_extension() {
    let (dir, input) = fixture();
    let service = ImageProcessingService::new();
    let cases = [
        ("a.bmp", None, ImageFormat::Bmp),
        ("b.gif", None, ImageFormat::Gif),
        ("c.JPEG", None, ImageFormat::Jpeg),
        ("d.png", None, ImageFormat::Png),
        ("e.img", Some("bmp"), ImageFormat::Bmp),
        ("f.png", Some("jpeg"), ImageFormat::Jpeg),
    ];
    for (name, format, expected) in cases {
        let output = dir.path().join(name);
        let mut parameters = json!({"inputPath": input, "outputPath": path_str(&output)});
        if let Some(format) = format {
            parameters["format"] = json!(format);
        }
        let run = common::run(&service, task("convertFormat", parameters)).await;
        run.assert_progress(3);
        assert_eq!(probe(&output), (expected, 200, 100), "{name}");
        assert_eq!(
            run.ok()["format"],
            expected.extensions_str()[0].replace("jpg", "jpeg")
        );
    }

    // Each written format reads back as an input.
    for (name, format) in [("a.bmp", "bmp"), ("b.gif", "gif"), ("c.JPEG", "jpeg")] {
        let input = dir.path().join(name);
        let output = dir.path().join(format!("{name}.png"));
        let run = common::run(
            &service,
            task(
                "resizeImage",
                json!({"inputPath": path_str(&input), "outputPath": path_str(&output),
                       "width": 20, "height": 10}),
            ),
        )
        .await;
        assert_eq!(run.ok()["inputFormat"], format);
        assert_eq!(probe(&output), (ImageFormat::Png, 20, 10));
    }

    // Quality reaches the JPEG encoder.
    let mut sizes = Vec::new();
    for quality in [5, 100] {
        let output = dir.path().join(format!("q{quality}.jpg"));
        let run = common::run(
            &service,
            task(
                "convertFormat",
                json!({"inputPath": input, "outputPath": path_str(&output), "quality": quality}),
            ),
        )
        .await;
        assert_eq!(run.ok()["quality"], quality);
        sizes.push(run.ok()["bytesWritten"].as_u64().unwrap());
    }
    assert!(sizes[0] < sizes[1], "{sizes:?}");
}

#[tokio::test]
async fn an_existing_output_is_replaced() {
    let (dir, input) = fixture();
    let output = dir.path().join("out.png");
    std::fs::write(&output, b"old contents").unwrap();
    let run = common::run(
        &ImageProcessingService::new(),
        task(
            "resizeImage",
            json!({"inputPath": input, "outputPath": path_str(&output), "width": 10, "height": 10}),
        ),
    )
    .await;
    run.ok();
    assert_eq!(probe(&output), (ImageFormat::Png, 10, 10));
}

#[tokio::test]
async fn a_missing_input_fails_like_the_seed_example() {
    let dir = specwire_testsupport::temp_dir();
    let missing = dir.path().join("image.png");
    let service = ImageProcessingService::new();
    for operation in ["resizeImage", "applyFilter", "convertFormat"] {
        let run = common::run(
            &service,
            task(
                operation,
                json!({"inputPath": path_str(&missing), "outputPath": path_str(&dir.path().join("o.png")),
                       "width": 5, "height": 5, "name": "blur"}),
            ),
        )
        .await;
        let error = run.err();
        assert_eq!(error.code, codes::FILE_NOT_FOUND);
        assert_eq!(error.message, "Input file not found.");
        assert_eq!(
            error.details.as_deref(),
            Some(format!("Could not locate '{}'.", missing.display()).as_str())
        );
        assert!(run.progress.is_empty(), "fails before any work");
    }

    // The seed's own AssignTask parameters, verbatim (§5.3 and §5.4).
    let run = common::run(
        &service,
        task(
            "resizeImage",
            json!({"inputPath": "C:\\Data\\Raw\\image.png",
                   "outputPath": "C:\\Data\\Processed\\resized.jpg", "width": 1024, "height": 768}),
        ),
    )
    .await;
    let error = run.err();
    assert_eq!(
        (
            error.code.as_str(),
            error.message.as_str(),
            error.details.as_deref()
        ),
        (
            "FILE_NOT_FOUND",
            "Input file not found.",
            Some("Could not locate 'C:\\Data\\Raw\\image.png'.")
        )
    );

    // A directory is not an input file either.
    let run = common::run(
        &service,
        task(
            "convertFormat",
            json!({"inputPath": path_str(dir.path()), "outputPath": path_str(&dir.path().join("o.png"))}),
        ),
    )
    .await;
    assert_eq!(run.err().code, codes::FILE_NOT_FOUND);
}

/// Runs `operation` with `parameters` plus a real input and output, and
/// returns the failure.
async fn failure(operation: &str, mut parameters: Value) -> TaskError {
    let (dir, input) = fixture();
    if parameters.get("inputPath").is_none() {
        parameters["inputPath"] = json!(input);
    }
    if parameters.get("outputPath").is_none() {
        parameters["outputPath"] = json!(path_str(&dir.path().join("out.png")));
    }
    let run = common::run(&ImageProcessingService::new(), task(operation, parameters)).await;
    let error = run.err().clone();
    assert!(
        !dir.path().join("out.png").exists(),
        "no output after a failure"
    );
    assert_eq!(files(dir.path()), ["in.png"], "no temporary file left");
    error
}

#[tokio::test]
async fn bad_parameter_values_are_invalid_parameters() {
    let bad = [
        ("resizeImage", json!({"width": 0, "height": 10})),
        ("resizeImage", json!({"width": 16385, "height": 10})),
        ("resizeImage", json!({"width": 10, "height": -3})),
        ("resizeImage", json!({"width": 10.5, "height": 10})),
        ("resizeImage", json!({"width": "10", "height": 10})),
        ("resizeImage", json!({"width": 10})),
        (
            "resizeImage",
            json!({"width": 10, "height": 10, "filter": "bicubic"}),
        ),
        (
            "resizeImage",
            json!({"width": 10, "height": 10, "keepAspectRatio": "yes"}),
        ),
        // 16384×16384 is within each side's range but over the pixel budget.
        ("resizeImage", json!({"width": 16384, "height": 16384})),
        (
            "resizeImage",
            json!({"width": 10, "height": 10, "outputPath": "/tmp/out.webp"}),
        ),
        (
            "resizeImage",
            json!({"width": 10, "height": 10, "outputPath": "/tmp/out"}),
        ),
        ("applyFilter", json!({"name": "emboss"})),
        ("applyFilter", json!({"name": "blur", "size": 0})),
        ("applyFilter", json!({"name": "blur", "size": 1000})),
        ("applyFilter", json!({"name": "brighten", "size": -300})),
        ("applyFilter", json!({})),
        ("convertFormat", json!({"format": "tiff"})),
        ("convertFormat", json!({"outputPath": "/tmp/out.tiff"})),
        ("convertFormat", json!({"quality": 0, "format": "jpeg"})),
        ("convertFormat", json!({"quality": 101, "format": "jpeg"})),
        ("convertFormat", json!({"inputPath": 3})),
    ];
    for (operation, parameters) in bad {
        let error = failure(operation, parameters.clone()).await;
        assert_eq!(
            error.code,
            standard::INVALID_PARAMETERS,
            "{operation} {parameters}: {error}"
        );
    }

    let error = failure("applyFilter", json!({"name": "emboss"})).await;
    for name in specwire_services::image_processing::FILTER_NAMES {
        assert!(error.message.contains(name), "{}", error.message);
    }
    let error = failure("rotateImage", json!({})).await;
    assert_eq!(error.code, standard::UNKNOWN_OPERATION);
    let run = common::run(
        &ImageProcessingService::new(),
        task("rotateImage", json!({})),
    )
    .await;
    assert_eq!(
        run.err().code,
        standard::UNKNOWN_OPERATION,
        "even without paths"
    );
}

#[tokio::test]
async fn a_resize_needing_too_much_memory_is_refused() {
    let dir = specwire_testsupport::temp_dir();
    let input = dir.path().join("wide.png");
    write_png(&input, 16_384, 1);
    // 1×8192 is a small output, but resampling 16384 columns to 8192 rows
    // first would take 2 GiB.
    let run = common::run(
        &ImageProcessingService::new(),
        task(
            "resizeImage",
            json!({"inputPath": path_str(&input), "outputPath": path_str(&dir.path().join("o.png")),
                   "width": 1, "height": 8192}),
        ),
    )
    .await;
    assert_eq!(
        run.err().code,
        standard::INVALID_PARAMETERS,
        "{}",
        run.err()
    );
    assert_eq!(files(dir.path()), ["wide.png"]);
}

#[tokio::test]
async fn unusable_outputs_are_not_writable() {
    let (dir, input) = fixture();
    let service = ImageProcessingService::new();
    let directory_target = dir.path().join("taken.png");
    std::fs::create_dir(&directory_target).unwrap();
    for output in [dir.path().join("missing/out.png"), directory_target] {
        let run = common::run(
            &service,
            task(
                "convertFormat",
                json!({"inputPath": input, "outputPath": path_str(&output)}),
            ),
        )
        .await;
        assert_eq!(
            run.err().code,
            codes::OUTPUT_NOT_WRITABLE,
            "{}",
            output.display()
        );
    }
    assert_eq!(files(dir.path()), ["in.png", "taken.png"]);
}

/// The start of a PNG claiming `width`×`height` RGBA pixels: a valid
/// signature, header and first data chunk header, so the decoder gets as
/// far as checking the size, and no pixel data.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for byte in bytes {
            crc ^= u32::from(*byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    fn chunk(png: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        png.extend(u32::try_from(data.len()).unwrap().to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        png.extend(&body);
        png.extend(crc32(&body).to_be_bytes());
    }
    let mut header = Vec::new();
    header.extend(width.to_be_bytes());
    header.extend(height.to_be_bytes());
    header.extend([8, 6, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &header);
    chunk(&mut png, b"IDAT", &[0x78, 0x9c]);
    png
}

#[tokio::test]
async fn corrupt_or_oversized_inputs_are_invalid_images() {
    let dir = specwire_testsupport::temp_dir();
    let mut valid = Vec::new();
    common::gradient(64, 64)
        .write_to(&mut std::io::Cursor::new(&mut valid), ImageFormat::Png)
        .unwrap();
    let mut garbage = Vec::new();
    let mut state = 0x2545_F491_u32;
    for _ in 0..4096 {
        // xorshift: reproducible noise that starts with no image signature.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        garbage.push((state >> 24) as u8);
    }
    let inputs: [(&str, Vec<u8>, &str); 6] = [
        (
            "random.png",
            garbage,
            "Input file is not a supported image.",
        ),
        (
            "empty.png",
            Vec::new(),
            "Input file is not a supported image.",
        ),
        (
            "truncated.png",
            valid[..valid.len() / 2].to_vec(),
            "Input file is not a valid image.",
        ),
        // Over the side limit, and (1 GiB of RGBA) over the decoding budget:
        // refused from the header, before any pixel buffer is allocated.
        (
            "too-wide.png",
            png_claiming(20_000, 1),
            "Input image is too large.",
        ),
        (
            "too-big.png",
            png_claiming(16_000, 16_000),
            "Input image is too large.",
        ),
        (
            "not-an-image.jpg",
            b"GIF89a".to_vec(),
            "Input file is not a valid image.",
        ),
    ];
    let service = ImageProcessingService::new();
    for (name, bytes, message) in inputs {
        let input = dir.path().join(name);
        std::fs::write(&input, bytes).unwrap();
        let output = dir.path().join("out.png");
        let run = common::run(
            &service,
            task(
                "resizeImage",
                json!({"inputPath": path_str(&input), "outputPath": path_str(&output),
                       "width": 10, "height": 10}),
            ),
        )
        .await;
        let error = run.err();
        assert_eq!(error.code, codes::INVALID_IMAGE, "{name}: {error}");
        assert_eq!(error.message, message, "{name}: {error}");
        assert!(!output.exists(), "{name}");
    }
    let names = files(dir.path());
    assert!(
        names.iter().all(|name| !name.contains("specwire-tmp")),
        "{names:?}"
    );
}

#[tokio::test]
async fn a_task_cancelled_before_it_runs_does_nothing() {
    let (dir, input) = fixture();
    let cancel = CancellationToken::new();
    cancel.cancel();
    let run = common::run_with(
        &ImageProcessingService::new(),
        task(
            "resizeImage",
            json!({"inputPath": input, "outputPath": path_str(&dir.path().join("out.png")),
                   "width": 10, "height": 10}),
        ),
        cancel,
    )
    .await;
    assert_eq!(run.err(), &TaskError::cancelled());
    assert!(run.progress.is_empty());
    assert_eq!(files(dir.path()), ["in.png"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_cancelled_while_running_leaves_no_output() {
    let dir = specwire_testsupport::temp_dir();
    let input = dir.path().join("big.png");
    // Big enough that decoding and a Lanczos resize take far longer than
    // the test needs to see the first report and cancel.
    write_png(&input, 1600, 1200);
    let output = dir.path().join("out.png");
    let service = ImageProcessingService::new();
    let cancel = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let context = specwire_runtime::task::TaskContext::new(tx, cancel.clone());
    let running = tokio::spawn(service.run(
        task(
            "resizeImage",
            json!({"inputPath": path_str(&input), "outputPath": path_str(&output),
                   "width": 1500, "height": 1100}),
        ),
        context,
    ));
    let first = rx.recv().await.expect("a first progress report");
    assert_eq!(first.percent, 10);
    cancel.cancel();
    let limit = std::time::Duration::from_secs(60);
    let result = within_for(limit, "the task's end", running)
        .await
        .expect("no panic");
    assert_eq!(result.unwrap_err(), TaskError::cancelled());
    assert!(!output.exists());
    assert_eq!(files(dir.path()), ["big.png"], "no temporary file left");
}

#[test]
fn the_description_matches_the_operations() {
    let service = ImageProcessingService::new();
    let description = service.description();
    assert_eq!(description.name, "ImageProcessingService");
    assert_eq!(description.version, "1.2.0");
    let operations: Vec<&str> = description
        .operations
        .iter()
        .map(|o| o.name.as_str())
        .collect();
    assert_eq!(operations, ["resizeImage", "applyFilter", "convertFormat"]);
    // The seed's AssignTask parameters pass the runtime's check.
    let seed = common::params(json!({
        "inputPath": "C:\\Data\\Raw\\image.png",
        "outputPath": "C:\\Data\\Processed\\resized.jpg",
        "width": 1024,
        "height": 768
    }));
    assert_eq!(
        description.find("resizeImage").unwrap().check(&seed),
        Ok(vec![])
    );
}

mod robustness {
    use super::*;
    use proptest::prelude::*;

    fn any_json() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            (-20_000i64..20_000).prop_map(Value::from),
            "[a-z0-9]{0,10}".prop_map(Value::from),
            prop::sample::select(vec!["blur", "invert", "lanczos3", "png", "jpeg", "x.gif"])
                .prop_map(Value::from),
            Just(json!([1, 2])),
            Just(json!({"a": 1})),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Whatever the parameters, a direct call returns an error (the
        /// output directory does not exist, so no real work starts) and
        /// never panics.
        #[test]
        fn arbitrary_parameters_never_panic(
            operation in prop::sample::select(vec!["resizeImage", "applyFilter", "convertFormat", "other"]),
            values in prop::collection::vec(any_json(), 8),
            present in prop::collection::vec(any::<bool>(), 8),
        ) {
            let (dir, input) = fixture();
            let names = ["width", "height", "filter", "keepAspectRatio", "name", "size", "format", "quality"];
            let mut parameters = serde_json::Map::new();
            parameters.insert("inputPath".into(), json!(input));
            parameters.insert("outputPath".into(), json!(path_str(&dir.path().join("none/out.png"))));
            for ((name, value), present) in names.iter().zip(values).zip(present) {
                if present {
                    parameters.insert((*name).into(), value);
                }
            }
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let run = runtime.block_on(common::run(
                &ImageProcessingService::new(),
                task(operation, Value::Object(parameters)),
            ));
            let error = run.err();
            prop_assert!(
                [standard::INVALID_PARAMETERS, standard::UNKNOWN_OPERATION, codes::OUTPUT_NOT_WRITABLE]
                    .contains(&error.code.as_str()),
                "{}", error
            );
        }
    }
}

#[tokio::test]
async fn paths_are_confined_to_the_files_root() {
    let outside = specwire_testsupport::temp_dir();
    let root = specwire_testsupport::temp_dir();
    write_png(&root.path().join("in.png"), 20, 10);
    write_png(&outside.path().join("secret.png"), 20, 10);
    let service = ImageProcessingService::new().with_files_root(root.path());
    let resize = |input: &str, output: &str| {
        task(
            "resizeImage",
            json!({"inputPath": input, "outputPath": output, "width": 5, "height": 5}),
        )
    };
    // Relative paths are taken from the root.
    let done = common::run(&service, resize("in.png", "out.png")).await;
    done.ok();
    assert!(root.path().join("out.png").exists());
    // Escapes are refused, existing or not.
    let secret = outside.path().join("secret.png");
    let stolen = outside.path().join("stolen.png");
    for (input, output) in [
        (path_str(&secret), "x.png"),
        ("../secret.png", "x.png"),
        ("in.png", path_str(&stolen)),
        ("in.png", "../../stolen.png"),
    ] {
        let run = common::run(&service, resize(input, output)).await;
        assert_eq!(run.err().code, standard::FORBIDDEN, "{input} -> {output}");
    }
    // A symbolic link inside the root that points outside is refused too.
    std::os::unix::fs::symlink(&secret, root.path().join("link.png")).unwrap();
    let run = common::run(&service, resize("link.png", "y.png")).await;
    assert_eq!(run.err().code, standard::FORBIDDEN);
    assert!(!stolen.exists());
}
