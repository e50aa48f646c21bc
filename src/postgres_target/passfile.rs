//! The password from a pgpass file, as libpq reads one: the first line
//! whose host, port, database and user match, `*` matching any.

use std::path::Path;

use tokio_postgres::config::Host;

use super::TargetError;

/// The password for `config`'s host, port, database and user from a
/// pgpass file (`host:port:database:user:password`, `*` matching any,
/// `\:` and `\\` escaped). Like libpq, a file others can read is refused.
pub(super) fn password_from(
    file: &Path,
    config: &tokio_postgres::Config,
) -> Result<Option<String>, TargetError> {
    let unreadable = |e: std::io::Error| TargetError::PassFile {
        path: file.display().to_string(),
        message: e.to_string(),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file)
            .map_err(unreadable)?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(TargetError::PassFileShared(file.display().to_string()));
        }
    }
    let text = std::fs::read_to_string(file).map_err(unreadable)?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        #[cfg(unix)]
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user().unwrap_or_default();
    let database = config.get_dbname().unwrap_or(user);
    let wanted = [host.as_str(), port.as_str(), database, user];
    Ok(text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .map(fields)
        .find(|fields| {
            fields.len() == 5
                && fields
                    .iter()
                    .zip(wanted)
                    .all(|(field, want)| field == "*" || field == want)
        })
        .map(|mut fields| fields.remove(4)))
}

/// A pgpass line's fields, `\:` and `\\` unescaped.
fn fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut().expect("one field").extend(chars.next()),
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}
