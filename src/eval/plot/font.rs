//! The chart's font: one TrueType face registered for plotters' "sans-serif" family,
//! from `PLOT_FONT` or the usual system locations.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::style::{register_font, FontStyle};

use super::FONT;

/// Regular font files to try, each with the bold face that usually sits
/// next to it (used for the title when present).
const FONT_CANDIDATES: &[(&str, &str)] = &[
    (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
        "/usr/share/fonts/truetype/liberation2/LiberationSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
        "/usr/share/fonts/liberation-sans/LiberationSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/TTF/LiberationSans-Regular.ttf",
        "/usr/share/fonts/TTF/LiberationSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
        "/usr/share/fonts/truetype/freefont/FreeSansBold.ttf",
    ),
    (
        "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
        "/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/noto/NotoSans-Regular.ttf",
        "/usr/share/fonts/noto/NotoSans-Bold.ttf",
    ),
    (
        "/System/Library/Fonts/Supplemental/Arial.ttf",
        "/System/Library/Fonts/Supplemental/Arial Bold.ttf",
    ),
    ("/Library/Fonts/Arial.ttf", "/Library/Fonts/Arial Bold.ttf"),
    (
        r"C:\Windows\Fonts\arial.ttf",
        r"C:\Windows\Fonts\arialbd.ttf",
    ),
];

/// Registers a font for plotters' "sans-serif" family once per process.
/// On failure returns a description of what was tried.
pub(super) fn ensure_font() -> Result<(), String> {
    static FONT_STATE: OnceLock<Result<(), String>> = OnceLock::new();
    FONT_STATE.get_or_init(load_font).clone()
}

fn register(path: &Path, style: FontStyle) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    // plotters keeps `&'static` font data; this runs at most once per face
    // per process, so leaking the buffer is intended.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    register_font(FONT, style, bytes).map_err(|_| "not a valid TrueType/OpenType font".to_string())
}

fn load_font() -> Result<(), String> {
    let mut tried = String::new();
    if let Some(p) = std::env::var_os("PLOT_FONT").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return register(&p, FontStyle::Normal)
            .map_err(|e| format!("PLOT_FONT={}: {e}", p.display()));
    }
    for (regular, bold) in FONT_CANDIDATES {
        let regular = Path::new(regular);
        if !regular.is_file() {
            continue;
        }
        match register(regular, FontStyle::Normal) {
            Ok(()) => {
                let bold = Path::new(bold);
                if bold.is_file() {
                    // Without it the title falls back to the regular face.
                    let _ = register(bold, FontStyle::Bold);
                }
                return Ok(());
            }
            Err(e) => {
                let _ = write!(tried, "{}: {e}; ", regular.display());
            }
        }
    }
    let _ = write!(
        tried,
        "none of the {} standard locations (e.g. {}) holds a usable font, and PLOT_FONT is unset",
        FONT_CANDIDATES.len(),
        FONT_CANDIDATES[0].0
    );
    Err(tried)
}
