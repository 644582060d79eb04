//! Writing an output image atomically.
//!
//! The image is encoded into a temporary file next to the target (same
//! directory, so the final `rename` never crosses a file system) and
//! renamed over the target only when everything succeeded. A failed or
//! cancelled task drops the [`AtomicOutput`], which removes the temporary
//! file: the target is either untouched or the complete new image, never a
//! half-written one.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use specwire_runtime::task::TaskError;

use crate::codes;

/// Distinguishes the temporary files of concurrent tasks in one process.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// How often to pick another temporary name when one is taken (say, left
/// behind by a crashed process with the same id).
const TEMP_ATTEMPTS: u32 = 16;

/// A temporary file that becomes `target` on [`commit`](AtomicOutput::commit)
/// and disappears if dropped before.
#[derive(Debug)]
pub(crate) struct AtomicOutput {
    target: PathBuf,
    temp: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl AtomicOutput {
    /// Creates the temporary file for `target`. Done before any decoding so
    /// that a missing or read-only output directory fails the task at once.
    pub(crate) fn create(target: &Path) -> Result<AtomicOutput, TaskError> {
        let name = target.file_name().ok_or_else(|| {
            TaskError::invalid_parameters("parameter `outputPath` does not name a file")
                .with_details(format!("'{}' has no file name.", target.display()))
        })?;
        if target.is_dir() {
            return Err(not_writable(format!(
                "'{}' is a directory.",
                target.display()
            )));
        }
        // `Path::parent` of a bare file name is "", meaning the current directory.
        let directory = match target.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        match fs::metadata(directory) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => {
                return Err(not_writable(format!(
                    "'{}' is not a directory.",
                    directory.display()
                )))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(not_writable(format!(
                    "Could not locate directory '{}'.",
                    directory.display()
                )))
            }
            Err(error) => {
                return Err(not_writable(format!(
                    "Could not access directory '{}': {error}.",
                    directory.display()
                )))
            }
        }

        let mut last_error = None;
        for _ in 0..TEMP_ATTEMPTS {
            // A dot file, so directory listings and globs for the real
            // output do not pick up an unfinished image.
            let mut temp_name = OsString::from(".");
            temp_name.push(name);
            temp_name.push(format!(
                ".{}-{}.specwire-tmp",
                std::process::id(),
                NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
            ));
            let temp = directory.join(temp_name);
            match OpenOptions::new().write(true).create_new(true).open(&temp) {
                Ok(file) => {
                    return Ok(AtomicOutput {
                        target: target.to_path_buf(),
                        temp,
                        writer: Some(BufWriter::new(file)),
                    })
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    last_error = Some(error);
                }
                Err(error) => return Err(write_failed(directory, &error)),
            }
        }
        let error = last_error.unwrap_or_else(|| io::Error::other("no temporary name was free"));
        Err(write_failed(directory, &error))
    }

    /// Where the encoder writes.
    pub(crate) fn writer(&mut self) -> Result<&mut BufWriter<File>, TaskError> {
        self.writer
            .as_mut()
            .ok_or_else(|| TaskError::internal("the output was already committed"))
    }

    /// Flushes, syncs and renames the temporary file over the target.
    /// Returns the size of the written file.
    pub(crate) fn commit(mut self) -> Result<u64, TaskError> {
        let directory = self.temp.parent().unwrap_or(Path::new(".")).to_path_buf();
        let writer = self
            .writer
            .take()
            .ok_or_else(|| TaskError::internal("the output was already committed"))?;
        let file = writer
            .into_inner()
            .map_err(|error| write_failed(&directory, error.error()))?;
        // Sync before the rename: otherwise a crash could leave the target
        // renamed but empty on some file systems.
        file.sync_all()
            .map_err(|error| write_failed(&directory, &error))?;
        let bytes = file
            .metadata()
            .map_err(|error| write_failed(&directory, &error))?
            .len();
        drop(file);
        fs::rename(&self.temp, &self.target).map_err(|error| {
            not_writable(format!(
                "Could not write '{}': {error}.",
                self.target.display()
            ))
        })?;
        // Renamed: nothing left for `drop` to remove.
        self.temp = PathBuf::new();
        Ok(bytes)
    }
}

impl Drop for AtomicOutput {
    fn drop(&mut self) {
        if self.temp.as_os_str().is_empty() {
            return;
        }
        // Close before removing (Windows cannot remove an open file).
        drop(self.writer.take());
        if let Err(error) = fs::remove_file(&self.temp) {
            tracing::warn!(path = %self.temp.display(), %error, "could not remove a temporary output file");
        }
    }
}

fn not_writable(details: String) -> TaskError {
    TaskError::new(codes::OUTPUT_NOT_WRITABLE, "Output path is not writable.").with_details(details)
}

fn write_failed(directory: &Path, error: &io::Error) -> TaskError {
    not_writable(format!(
        "Could not write to '{}': {error}.",
        directory.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn commit_replaces_the_target_and_drop_leaves_nothing() {
        let dir = specwire_testsupport::temp_dir();
        let target = dir.path().join("out.bin");
        fs::write(&target, b"old").unwrap();

        let mut output = AtomicOutput::create(&target).unwrap();
        output.writer().unwrap().write_all(b"new!").unwrap();
        assert_eq!(
            fs::read(&target).unwrap(),
            b"old",
            "not replaced before commit"
        );
        assert_eq!(output.commit().unwrap(), 4);
        assert_eq!(fs::read(&target).unwrap(), b"new!");

        let mut output = AtomicOutput::create(&target).unwrap();
        output.writer().unwrap().write_all(b"half").unwrap();
        drop(output);
        assert_eq!(fs::read(&target).unwrap(), b"new!");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("out.bin")]);
    }

    #[test]
    fn missing_directories_and_directory_targets_are_not_writable() {
        let dir = specwire_testsupport::temp_dir();
        let error = AtomicOutput::create(&dir.path().join("nope/out.png")).unwrap_err();
        assert_eq!(error.code, codes::OUTPUT_NOT_WRITABLE);
        let error = AtomicOutput::create(dir.path()).unwrap_err();
        assert_eq!(error.code, codes::OUTPUT_NOT_WRITABLE);
        let error = AtomicOutput::create(Path::new("/")).unwrap_err();
        assert_eq!(
            error.code,
            specwire_runtime::task::codes::INVALID_PARAMETERS
        );
    }
}
