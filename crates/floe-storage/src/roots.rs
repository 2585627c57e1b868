//! Where the operator lets registered warehouses keep their files.
//!
//! Whoever may register a warehouse chooses its storage URL; without a bound they could point a
//! warehouse at any directory the server can write (its own metadata store, `/etc`) or any bucket
//! its network reaches. [`AllowedRoots`] is that bound: a storage URL is allowed when it is one
//! of the roots or lies under one.
//!
//! "Under" is decided on canonical forms, by whole path segments: `/lake/t1` is not under
//! `/lake/t10`'s sibling `/lake/t1x`, and no URL with a `..` segment (percent-encoded or not) is
//! accepted at all. For `file://` URLs the part of the path that exists is resolved through its
//! symlinks first, so a link inside an allowed root that points outside it does not let a
//! warehouse out; the rest (directories still to be created) is compared as written.

use std::path::{Component, Path, PathBuf};

use url::Url;

/// The storage roots registered warehouses must lie under (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedRoots {
    roots: Vec<Root>,
    /// The roots as the operator wrote them, for messages.
    shown: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Root {
    /// A canonical absolute directory.
    Local(PathBuf),
    /// Any other URL: scheme, authority (bucket, container@account, host:port) and path segments.
    Remote {
        scheme: String,
        authority: String,
        segments: Vec<String>,
    },
}

impl AllowedRoots {
    /// Parses the operator's roots; a malformed one is an error naming it.
    pub fn new<S: AsRef<str>>(roots: &[S]) -> Result<Self, String> {
        let mut parsed = Vec::new();
        for root in roots {
            let root = root.as_ref();
            parsed.push(
                Root::parse(root)
                    .map_err(|reason| format!("allowed storage root {root}: {reason}"))?,
            );
        }
        Ok(Self {
            roots: parsed,
            shown: roots.iter().map(|root| root.as_ref().to_string()).collect(),
        })
    }

    /// The local directory `dir` as the only root.
    pub fn local_dir(dir: &Path) -> Result<Self, String> {
        let absolute = std::path::absolute(dir)
            .map_err(|err| format!("cannot make {} absolute: {err}", dir.display()))?;
        let url = Url::from_directory_path(&absolute)
            .map_err(|()| format!("{} is not an absolute directory", absolute.display()))?;
        Self::new(&[url.as_str().trim_end_matches('/')])
    }

    /// The roots as configured, for messages.
    pub fn shown(&self) -> &[String] {
        &self.shown
    }

    /// `Ok` when `url` is one of the roots or under one; otherwise why not, naming the roots.
    pub fn check(&self, url: &str) -> Result<(), String> {
        let refused = |why: &str| {
            let allowed = if self.shown.is_empty() {
                "none are configured".to_string()
            } else {
                self.shown.join(", ")
            };
            format!(
                "storage URL {url} {why}; registered warehouses must lie under an allowed storage \
                 root ({allowed}); the operator adds roots with --allowed-storage-root or \
                 allowed-storage-roots"
            )
        };
        let candidate =
            Root::parse(url).map_err(|reason| refused(&format!("is refused: {reason}")))?;
        if self.roots.iter().any(|root| candidate.is_under(root)) {
            Ok(())
        } else {
            Err(refused("is outside the allowed storage roots"))
        }
    }
}

impl Root {
    fn parse(text: &str) -> Result<Self, String> {
        // Before Url::parse, which would quietly resolve `a/../b` for file URLs.
        if text
            .split(['/', '\\'])
            .any(|segment| matches!(percent_decoded(segment).as_str(), ".." | "."))
        {
            return Err("it has a \".\" or \"..\" segment".into());
        }
        let url = Url::parse(text).map_err(|err| format!("not a URL: {err}"))?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err("a storage URL has no query or fragment".into());
        }
        if url.scheme() == "file" {
            let path = url
                .to_file_path()
                .map_err(|()| "not an absolute local path".to_string())?;
            return Ok(Root::Local(resolve_existing(&path)?));
        }
        let authority = match (url.username(), url.host_str()) {
            (_, None) | (_, Some("")) => return Err("it names no bucket or host".into()),
            ("", Some(host)) => host.to_ascii_lowercase(),
            (user, Some(host)) => format!("{user}@{}", host.to_ascii_lowercase()),
        };
        let authority = match url.port() {
            Some(port) => format!("{authority}:{port}"),
            None => authority,
        };
        let segments = url
            .path()
            .split('/')
            .filter(|segment| !segment.is_empty())
            .map(percent_decoded)
            .collect();
        Ok(Root::Remote {
            // s3a:// is Hadoop's name for the same buckets.
            scheme: match url.scheme() {
                "s3a" => "s3".to_string(),
                scheme => scheme.to_string(),
            },
            authority,
            segments,
        })
    }

    fn is_under(&self, root: &Root) -> bool {
        match (self, root) {
            (Root::Local(path), Root::Local(root)) => path.starts_with(root),
            (
                Root::Remote {
                    scheme,
                    authority,
                    segments,
                },
                Root::Remote {
                    scheme: root_scheme,
                    authority: root_authority,
                    segments: root_segments,
                },
            ) => {
                scheme == root_scheme
                    && authority == root_authority
                    && segments.starts_with(root_segments)
            }
            _ => false,
        }
    }
}

fn percent_decoded(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// `path` with its longest existing ancestor resolved through symlinks, the rest appended as
/// written (it holds no `.` or `..`: [`Root::parse`] refused those).
fn resolve_existing(path: &Path) -> Result<PathBuf, String> {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(resolved) => {
                return Ok(rest.iter().rev().fold(resolved, |dir, part| dir.join(part)));
            }
            Err(_) => {
                let Some(Component::Normal(last)) = existing.components().next_back() else {
                    return Err(format!("cannot resolve {}", path.display()));
                };
                rest.push(last.to_os_string());
                existing.pop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_url(path: &Path) -> String {
        Url::from_directory_path(path).unwrap().to_string()
    }

    #[test]
    fn remote_urls_are_allowed_under_their_root_by_whole_segments() {
        let roots = AllowedRoots::new(&["s3://lake/tables", "gs://other"]).unwrap();
        for allowed in [
            "s3://lake/tables",
            "s3://lake/tables/",
            "s3://lake/tables/eu",
            "s3a://lake/tables/eu",
            "gs://other/anything/at/all",
        ] {
            assert!(roots.check(allowed).is_ok(), "{allowed}");
        }
        for refused in [
            "s3://lake",
            "s3://lake/tables2",
            "s3://lake/t",
            "s3://lakehouse/tables",
            "s3://lake/tables/../secrets",
            "s3://lake/tables/%2e%2e/secrets",
            "s3://lake/tables/./x",
            "gs://elsewhere/x",
            "file:///tmp/x",
            "s3://lake/tables?x=1",
        ] {
            let err = roots.check(refused).unwrap_err();
            assert!(
                err.contains("s3://lake/tables, gs://other"),
                "{refused}: {err}"
            );
        }
    }

    #[test]
    fn nothing_is_allowed_without_roots() {
        let err = AllowedRoots::default().check("s3://any/x").unwrap_err();
        assert!(err.contains("none are configured"), "{err}");
    }

    #[test]
    fn local_paths_are_compared_after_resolving_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("t1")).unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let roots = AllowedRoots::local_dir(&root).unwrap();

        for allowed in [root.clone(), root.join("t1"), root.join("new/deeper")] {
            assert!(roots.check(&dir_url(&allowed)).is_ok(), "{allowed:?}");
        }
        let root_text = dir_url(&root);
        for refused in [
            dir_url(&outside),
            dir_url(&root.join("link")),
            dir_url(&root.join("link/new")),
            format!("{root_text}t1/../../outside"),
            format!("{root_text}%2E%2E/outside"),
            dir_url(&dir.path().join("root2")),
            dir_url(dir.path()),
        ] {
            assert!(roots.check(&refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn the_root_itself_may_be_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir_all(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("alias")).unwrap();
        let roots = AllowedRoots::local_dir(&dir.path().join("alias")).unwrap();
        assert!(roots.check(&dir_url(&real.join("lake"))).is_ok());
        assert!(
            roots
                .check(&dir_url(&dir.path().join("alias/lake")))
                .is_ok()
        );
    }
}
