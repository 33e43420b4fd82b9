//! The bearer token of mutating requests (`POST /api/jobs`, `DELETE /api/jobs/{id}`): taken
//! from `PERPEFT_TOKEN`, or read from a file that the first start creates with a random token,
//! readable by its owner only. [`Authorized`] is the extractor a mutating handler takes.

use std::io::Write;
use std::path::{Path, PathBuf};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::AppState;
use super::error::Error;
use crate::error::{Error as LibError, IoContext, Result};

/// The environment variable that sets the token instead of the file.
pub const TOKEN_ENV: &str = "PERPEFT_TOKEN";

/// Where the token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `PERPEFT_TOKEN`.
    Env,
    /// A file that existed.
    File(PathBuf),
    /// A file this start created.
    Created(PathBuf),
}

/// `from_env` (the value of `PERPEFT_TOKEN`) when set and not empty, else the token in
/// `file`. A missing file is created with a fresh random token, owner read/write only: written
/// under a new name, then linked into place only if nothing is there (so two servers starting
/// at once end up with the same token, and no existing file or link is followed). An existing
/// file that others may read is refused.
pub fn load_token(file: &Path, from_env: Option<String>) -> Result<(String, TokenSource)> {
    if let Some(t) = from_env
        && !t.trim().is_empty()
    {
        return Ok((t.trim().to_string(), TokenSource::Env));
    }
    if let Some(token) = read_token(file)? {
        return Ok((token, TokenSource::File(file.into())));
    }
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).at(dir)?;
    }
    let mut tmp = file.as_os_str().to_os_string();
    tmp.push(format!(".new-{}-{}", std::process::id(), &token[..8]));
    let tmp = PathBuf::from(tmp);
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .at(&tmp)?;
        f.write_all(token.as_bytes()).at(&tmp)?;
    }
    let linked = std::fs::hard_link(&tmp, file);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok((token, TokenSource::Created(file.into()))),
        // another start won: use its token
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match read_token(file)? {
            Some(t) => Ok((t, TokenSource::File(file.into()))),
            None => Err(LibError::format(file, "empty token file")),
        },
        Err(e) => Err(LibError::io(file, e)),
    }
}

/// The token in `file`, if it exists and is not empty; a file others may read is refused.
fn read_token(file: &Path) -> Result<Option<String>> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::symlink_metadata(file) {
        Ok(m) => {
            if !m.is_file() {
                return Err(LibError::format(file, "the token file is not a plain file"));
            }
            if m.permissions().mode() & 0o077 != 0 {
                return Err(LibError::format(
                    file,
                    "others may read the token file: `chmod 600` it, or delete it for a new token",
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LibError::io(file, e)),
    }
    let t = std::fs::read_to_string(file).at(file)?;
    Ok(Some(t.trim().to_string()).filter(|t| !t.is_empty()))
}

/// Proof that a request carried the server's bearer token.
pub struct Authorized;

/// Equality that takes the same time wherever the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<AppState> for Authorized {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let given = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        match given {
            Some(t) if same(t.as_bytes(), state.token.as_bytes()) => Ok(Authorized),
            Some(_) => Err(Error::Unauthorized("the bearer token is wrong".into())),
            None => Err(Error::Unauthorized(
                "this request needs `Authorization: Bearer <token>` (the token file's path is printed when the server starts)".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_is_created_once_owner_only_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("perpeft-token-{}", std::process::id()));
        let file = dir.join("api-token");
        let _ = std::fs::remove_dir_all(&dir);
        let (a, source) = load_token(&file, None).unwrap();
        assert_eq!(source, TokenSource::Created(file.clone()));
        assert_eq!(a.len(), 64);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (b, source) = load_token(&file, Some(" ".into())).unwrap();
        assert_eq!(
            (b.clone(), source),
            (a.clone(), TokenSource::File(file.clone()))
        );
        let (c, source) = load_token(&file, Some("from-env".into())).unwrap();
        assert_eq!((c.as_str(), source), ("from-env", TokenSource::Env));
        // a token file others can read is refused, naming the fix
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_token(&file, None).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        // no temporary file is left behind
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"abc", b"ab"));
    }
}
