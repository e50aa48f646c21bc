//! A changed policy file put in place so that a reader sees the old file
//! or the new one, never half of either.

use std::path::{Path, PathBuf};

/// A new policy file written and flushed beside the one it replaces, so
/// that a reader sees the old file or the new one, never half.
pub(super) struct Prepared {
    file: PathBuf,
    temporary: PathBuf,
}

impl Prepared {
    pub(super) fn write(file: &Path, text: &str) -> std::io::Result<Self> {
        use std::io::Write;
        let mut temporary = file.as_os_str().to_owned();
        temporary.push(".flaregate-edit");
        let temporary = PathBuf::from(temporary);
        let mut out = std::fs::File::create(&temporary)?;
        if let Ok(meta) = std::fs::metadata(file) {
            let _ = std::fs::set_permissions(&temporary, meta.permissions());
        }
        out.write_all(text.as_bytes())?;
        out.sync_all()?;
        Ok(Self {
            file: file.to_path_buf(),
            temporary,
        })
    }

    /// Puts the new file in the old one's place.
    pub(super) fn install(self) -> std::io::Result<()> {
        std::fs::rename(&self.temporary, &self.file)?;
        if let Some(folder) = self.file.parent().and_then(|f| std::fs::File::open(f).ok()) {
            let _ = folder.sync_all();
        }
        Ok(())
    }

    pub(super) fn discard(self) {
        let _ = std::fs::remove_file(&self.temporary);
    }
}
