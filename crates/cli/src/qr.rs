//! QR codes for `otpauth://` URIs, drawn with Unicode half blocks (two module rows per line).

use qrcode::{Color, QrCode};

/// Light modules are drawn as foreground blocks (made for dark terminal backgrounds, like
/// `qrencode -t UTF8`), with a 2-module quiet zone. Returns `None` if the data does not fit.
pub fn render(data: &str) -> Option<String> {
    let code = QrCode::new(data.as_bytes()).ok()?;
    let width = code.width();
    let colors = code.to_colors();
    const QUIET: usize = 2;
    let size = width + 2 * QUIET;
    let light = |x: usize, y: usize| -> bool {
        if x < QUIET || y < QUIET || x >= width + QUIET || y >= width + QUIET {
            return true;
        }
        colors.get((y - QUIET) * width + (x - QUIET)) != Some(&Color::Dark)
    };
    let mut out = String::new();
    for y in (0..size).step_by(2) {
        for x in 0..size {
            let top = light(x, y);
            let bottom = y + 1 < size && light(x, y + 1);
            out.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_square_half_block_code() {
        let code =
            super::render("otpauth://totp/gatehouse:root?secret=JBSWY3DPEHPK3PXP&issuer=gatehouse");
        let Some(code) = code else { panic!("no code") };
        let lines: Vec<&str> = code.lines().collect();
        let width = lines[0].chars().count();
        assert!(width >= 25);
        assert!(lines.iter().all(|l| l.chars().count() == width));
        assert_eq!(lines.len(), width.div_ceil(2));
        // The quiet zone is light: the first line is all full blocks.
        assert!(lines[0].chars().all(|c| c == '█'));
    }
}
