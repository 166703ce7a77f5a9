//! The files contract: the purposes an app accepts uploads for
//! (`App::file_purposes`), each with its size limit, the content types it
//! allows (sniffed from the bytes, never taken from the client), whether
//! its files are public, and whether thumbnails are made. Storage, upload,
//! download and image processing are `sen-files`' business.

/// What uploads of one purpose may be and become.
#[derive(Debug, Clone)]
pub struct FilePurpose {
    /// `avatar`, `attachment`, `product_image` (unique per binary).
    pub name: &'static str,
    /// Largest upload in bytes (413 above, nothing stored).
    pub max_bytes: u64,
    /// Sniffed content types accepted (`image/jpeg`); empty = any.
    pub allowed_types: &'static [&'static str],
    /// Served to anyone with the link, cacheable; otherwise only to the
    /// owner and holders of `files:read`.
    pub public: bool,
    /// Make thumbnails (images only) after upload.
    pub thumbnails: bool,
}

/// The image types thumbnails can be made of.
pub const IMAGE_TYPES: &[&str] = &["image/jpeg", "image/png", "image/webp", "image/gif"];
