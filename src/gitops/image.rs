//! Image references split the way GitOps files store them: a name, a tag and a digest
//! (`registry.example.com/shop/web:1.4.2@sha256:…`), each perhaps absent.

use std::fmt;

/// An image reference in parts. A part a layout does not store is `None` on both sides of
/// a comparison (see [`ImageRef::keep`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageRef {
    /// The repository, with its registry (`registry.example.com/shop/web`).
    pub name: Option<String>,
    /// The tag (`1.4.2`).
    pub tag: Option<String>,
    /// The digest (`sha256:…`).
    pub digest: Option<String>,
}

/// Which parts of an image a layout stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parts {
    /// The repository.
    pub name: bool,
    /// The tag.
    pub tag: bool,
    /// The digest.
    pub digest: bool,
}

impl Parts {
    /// Every part.
    pub const ALL: Self = Self {
        name: true,
        tag: true,
        digest: true,
    };
}

impl ImageRef {
    /// Splits a reference. The tag is what follows the last `:` after the last `/`, so a
    /// registry's port (`registry:5000/web`) is not a tag.
    pub fn parse(reference: &str) -> Self {
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.to_owned())),
            None => (reference, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(colon) => {
                let colon = last_slash + colon;
                (&rest[..colon], Some(rest[colon + 1..].to_owned()))
            }
            None => (rest, None),
        };
        Self {
            name: (!name.is_empty()).then(|| name.to_owned()),
            tag,
            digest,
        }
    }

    /// Only the parts a layout stores.
    pub fn keep(&self, parts: Parts) -> Self {
        Self {
            name: self.name.clone().filter(|_| parts.name),
            tag: self.tag.clone().filter(|_| parts.tag),
            digest: self.digest.clone().filter(|_| parts.digest),
        }
    }
}

impl fmt::Display for ImageRef {
    /// The reference as written (`name:tag@digest`), with whatever parts it has.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.name {
            f.write_str(name)?;
        }
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_name_tag_and_digest() {
        let image = ImageRef::parse("registry:5000/shop/web:1.4.2@sha256:abc");
        assert_eq!(image.name.as_deref(), Some("registry:5000/shop/web"));
        assert_eq!(image.tag.as_deref(), Some("1.4.2"));
        assert_eq!(image.digest.as_deref(), Some("sha256:abc"));
        assert_eq!(image.to_string(), "registry:5000/shop/web:1.4.2@sha256:abc");
    }

    #[test]
    fn a_port_is_not_a_tag() {
        let image = ImageRef::parse("registry:5000/shop/web");
        assert_eq!(image.name.as_deref(), Some("registry:5000/shop/web"));
        assert_eq!(image.tag, None);
        let image = ImageRef::parse("web@sha256:abc");
        assert_eq!(
            (image.tag, image.digest.as_deref()),
            (None, Some("sha256:abc"))
        );
    }

    #[test]
    fn keeps_only_the_stored_parts() {
        let image = ImageRef::parse("shop/web:1.4.2@sha256:abc");
        let tag_only = Parts {
            name: false,
            tag: true,
            digest: false,
        };
        assert_eq!(image.keep(tag_only).to_string(), ":1.4.2");
        assert_eq!(image.keep(Parts::ALL), image);
    }
}
