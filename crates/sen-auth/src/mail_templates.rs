//! The auth app's mail, in English and Vietnamese (rendered by `sen-mail`).

use sen_core::mail::MailTemplate;

/// The password-reset message; variables: `link`, `minutes`.
pub const PASSWORD_RESET: &str = "auth.password_reset";

/// Every template the auth app sends.
pub fn all() -> Vec<MailTemplate> {
    vec![
        MailTemplate {
            name: PASSWORD_RESET,
            locale: "en",
            subject: "Reset your password",
            text: "Someone asked to reset the password of this account.\n\nTo choose a new one, open {{ link }}\n\nThe link works once, for {{ minutes }} minutes. If it was not you, ignore this message.\n",
            html: r#"<!doctype html><html lang="en"><body style="font-family:sans-serif;line-height:1.5">
<p>Someone asked to reset the password of this account.</p>
<p><a href="{{ link }}">Choose a new password</a></p>
<p>The link works once, for {{ minutes }} minutes. If it was not you, ignore this message.</p>
</body></html>"#,
        },
        MailTemplate {
            name: PASSWORD_RESET,
            locale: "vi",
            subject: "Đặt lại mật khẩu",
            text: "Có người đã yêu cầu đặt lại mật khẩu cho tài khoản này.\n\nĐể chọn mật khẩu mới, hãy mở {{ link }}\n\nLiên kết chỉ dùng được một lần, trong {{ minutes }} phút. Nếu không phải bạn, hãy bỏ qua thư này.\n",
            html: r#"<!doctype html><html lang="vi"><body style="font-family:sans-serif;line-height:1.5">
<p>Có người đã yêu cầu đặt lại mật khẩu cho tài khoản này.</p>
<p><a href="{{ link }}">Chọn mật khẩu mới</a></p>
<p>Liên kết chỉ dùng được một lần, trong {{ minutes }} phút. Nếu không phải bạn, hãy bỏ qua thư này.</p>
</body></html>"#,
        },
    ]
}
