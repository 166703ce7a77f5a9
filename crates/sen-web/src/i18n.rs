//! The pages' words in English and Vietnamese. The language comes from the
//! `sen_lang` cookie (set by the switcher, remembered for a year), else
//! from `Accept-Language`, else English.

use http::HeaderMap;

/// A supported language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// Tiếng Việt.
    Vi,
}

/// The cookie that remembers the choice.
pub const COOKIE: &str = "sen_lang";

impl Lang {
    /// The language of a request.
    pub fn of(headers: &HeaderMap) -> Self {
        if let Some(v) = sen_auth::cookies::read_headers(headers, COOKIE) {
            return Self::parse(v);
        }
        let accept = headers
            .get(http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        Self::parse(sen_core::mail::locale_from_accept_language(accept))
    }

    /// `vi` → Vietnamese; anything else English.
    pub fn parse(s: &str) -> Self {
        if s == "vi" { Self::Vi } else { Self::En }
    }

    /// `en` or `vi`.
    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Vi => "vi",
        }
    }

    /// The words.
    pub fn tx(self) -> &'static Texts {
        match self {
            Self::En => &EN,
            Self::Vi => &VI,
        }
    }
}

/// Every fixed string the pages show.
#[derive(Debug)]
pub struct Texts {
    /// Product name line.
    pub brand: &'static str,
    /// "Sign in".
    pub sign_in: &'static str,
    /// "Sign out".
    pub sign_out: &'static str,
    /// "Email".
    pub email: &'static str,
    /// "Password".
    pub password: &'static str,
    /// "Authenticator code".
    pub totp: &'static str,
    /// Shown when the account needs a code.
    pub totp_needed: &'static str,
    /// Wrong credentials.
    pub bad_credentials: &'static str,
    /// Too many attempts.
    pub rate_limited: &'static str,
    /// Dashboard title.
    pub dashboard: &'static str,
    /// Apps heading.
    pub apps: &'static str,
    /// "Users".
    pub users: &'static str,
    /// "Jobs".
    pub jobs: &'static str,
    /// Health strip: version.
    pub version: &'static str,
    /// Health strip: database.
    pub database: &'static str,
    /// Health strip: Redis.
    pub redis: &'static str,
    /// Health strip: queued jobs.
    pub queued: &'static str,
    /// Health strip: dead jobs.
    pub dead: &'static str,
    /// "ok".
    pub ok: &'static str,
    /// "down".
    pub down: &'static str,
    /// "not used".
    pub not_used: &'static str,
    /// Search button.
    pub search: &'static str,
    /// "Name".
    pub name: &'static str,
    /// "Status".
    pub status: &'static str,
    /// "active".
    pub active: &'static str,
    /// "disabled".
    pub disabled: &'static str,
    /// "Disable".
    pub disable: &'static str,
    /// "Enable".
    pub enable: &'static str,
    /// "Retry".
    pub retry: &'static str,
    /// "Kind".
    pub kind: &'static str,
    /// "Queue".
    pub queue: &'static str,
    /// "State".
    pub state: &'static str,
    /// "Attempts".
    pub attempts: &'static str,
    /// "Last error".
    pub last_error: &'static str,
    /// Empty list.
    pub nothing: &'static str,
    /// 403 title.
    pub forbidden: &'static str,
    /// 403 text.
    pub forbidden_text: &'static str,
    /// Profile page title.
    pub profile: &'static str,
    /// "Mood".
    pub mood: &'static str,
    /// "Save".
    pub save: &'static str,
    /// "Saved."
    pub saved: &'static str,
    /// "Avatar".
    pub avatar: &'static str,
    /// "Upload".
    pub upload: &'static str,
    /// "Sessions".
    pub sessions: &'static str,
    /// "This device".
    pub this_device: &'static str,
    /// "Sign out".
    pub revoke: &'static str,
    /// "Last seen".
    pub last_seen: &'static str,
    /// "Language".
    pub language: &'static str,
    /// "Next page".
    pub next_page: &'static str,
    /// "Dead-letter queue".
    pub dead_letters: &'static str,
    /// Security
    pub security: &'static str,
    /// Change password
    pub change_password: &'static str,
    /// Current password
    pub current_password: &'static str,
    /// New password
    pub new_password: &'static str,
    /// Password changed; your other sessions were signed out.
    pub password_changed: &'static str,
    /// Two-factor authentication
    pub two_factor: &'static str,
    /// Two-factor authentication is on.
    pub two_factor_on: &'static str,
    /// Two-factor authentication is off.
    pub two_factor_off: &'static str,
    /// Turn on
    pub enable_totp: &'static str,
    /// Turn off
    pub disable_totp: &'static str,
    /// Scan this code with your authenticator app, or enter the secret, then type the code it shows.
    pub scan_qr: &'static str,
    /// Secret
    pub secret: &'static str,
    /// Code
    pub code: &'static str,
    /// Confirm
    pub confirm: &'static str,
    /// Recovery codes: each works once. Keep them somewhere safe; they are shown only now.
    pub recovery_codes: &'static str,
    /// Audit log
    pub audit: &'static str,
    /// Actor
    pub actor: &'static str,
    /// Action
    pub action: &'static str,
    /// Target
    pub target: &'static str,
    /// Time
    pub time: &'static str,
    /// Filter
    pub filter: &'static str,
    /// Schedules
    pub schedules: &'static str,
    /// Last run
    pub last_run: &'static str,
    /// Next run
    pub next_run: &'static str,
    /// Run now
    pub run_now: &'static str,
    /// Queued.
    pub queued_now: &'static str,
    /// Mail
    pub mail: &'static str,
    /// Recipient
    pub recipient: &'static str,
    /// Subject
    pub subject: &'static str,
    /// Preview
    pub preview: &'static str,
    /// Notifications
    pub notifications: &'static str,
    /// Mark read
    pub mark_read: &'static str,
    /// Mark all read
    pub mark_all_read: &'static str,
    /// unread
    pub unread: &'static str,
    /// API keys
    pub api_keys: &'static str,
    /// Key name
    pub key_name: &'static str,
    /// Permissions
    pub permissions: &'static str,
    /// Create
    pub create: &'static str,
    /// Copy this key now: it is shown only once.
    pub key_once: &'static str,
    /// Connected apps
    pub connected_apps: &'static str,
    /// Scopes
    pub scopes: &'static str,
    /// Your account holds no permissions to delegate; a key can still identify you.
    pub no_permissions: &'static str,
    /// Create a user
    pub create_user: &'static str,
    /// Roles
    pub roles: &'static str,
    /// Role
    pub role: &'static str,
    /// Scope (resource id, empty for global)
    pub scope: &'static str,
    /// Grant
    pub grant: &'static str,
    /// Remove
    pub remove: &'static str,
    /// global
    pub global: &'static str,
    /// "Act as this user".
    pub impersonate: &'static str,
    /// The banner while acting as someone.
    pub impersonating: &'static str,
    /// Ends an impersonation.
    pub stop_impersonating: &'static str,
    /// Turns a user's two-factor off.
    pub reset_mfa: &'static str,
    /// Ends every session of a user.
    pub revoke_all: &'static str,
    /// Who holds a role.
    pub holders: &'static str,
    /// OAuth clients heading.
    pub clients: &'static str,
    /// Redirect URI field.
    pub redirect_uris: &'static str,
    /// Confidential client checkbox.
    pub confidential: &'static str,
    /// Shown once after creating a client.
    pub secret_once: &'static str,
    /// "Owner".
    pub owner: &'static str,
    /// Queues heading.
    pub queues: &'static str,
    /// Jobs waiting.
    pub waiting: &'static str,
    /// Age of the oldest waiting job.
    pub oldest: &'static str,
    /// Jobs running.
    pub running: &'static str,
    /// "Job".
    pub job: &'static str,
    /// Job arguments.
    pub args: &'static str,
    /// Error history.
    pub errors: &'static str,
    /// "Cancel".
    pub cancel: &'static str,
    /// Bulk retry.
    pub retry_selected: &'static str,
    /// Bulk cancel.
    pub cancel_selected: &'static str,
    /// Checkbox column label.
    pub select: &'static str,
    /// "Files".
    pub files: &'static str,
    /// "Size".
    pub size: &'static str,
    /// "Delete".
    pub delete: &'static str,
    /// Charts heading.
    pub last_hour: &'static str,
    /// Chart title.
    pub requests_per_min: &'static str,
    /// Chart title.
    pub errors_per_min: &'static str,
    /// Chart title.
    pub jobs_done_per_min: &'static str,
    /// Chart title.
    pub jobs_failed_per_min: &'static str,
    /// OIDC button prefix.
    pub sign_in_with: &'static str,
    /// "Created".
    pub created: &'static str,
    /// Sessions a client holds.
    pub live_sessions: &'static str,
    /// Marks an impersonation session.
    pub impersonated_by: &'static str,
    /// Bulk result: changed.
    pub done_count: &'static str,
    /// Bulk result: refused.
    pub refused_count: &'static str,
    /// Retries every dead job.
    pub retry_all_dead: &'static str,
    /// When a job runs.
    pub run_at: &'static str,
    /// Health strip: share of 5xx answers in the last hour.
    pub error_rate: &'static str,
    /// "Total".
    pub total: &'static str,
    /// Highest minute.
    pub peak: &'static str,
    /// Summary above a refused form.
    pub fix_fields: &'static str,
    /// "New" button.
    pub new_row: &'static str,
    /// Filter: no restriction.
    pub any: &'static str,
    /// Sort control.
    pub sort_by: &'static str,
    /// Sort direction.
    pub descending: &'static str,
    /// 404 page title.
    pub not_found: &'static str,
    /// 404 page text.
    pub not_found_text: &'static str,
    /// "Settings and feature flags".
    pub settings: &'static str,
    /// Sessions table: device column.
    pub device: &'static str,
    /// Ends the user's other sessions.
    pub revoke_others: &'static str,
    /// Form error: missing value.
    pub err_required: &'static str,
    /// Form error: text too long ({max} is replaced).
    pub err_too_long: &'static str,
    /// Form error: number out of range ({min}, {max} replaced).
    pub err_range: &'static str,
    /// Form error: not a whole number.
    pub err_number: &'static str,
    /// Form error: not an email address.
    pub err_email: &'static str,
    /// Form error: not one of the choices ({values} replaced).
    pub err_choice: &'static str,
}

/// English.
pub static EN: Texts = Texts {
    brand: "Sen",
    sign_in: "Sign in",
    sign_out: "Sign out",
    email: "Email",
    password: "Password",
    totp: "Authenticator code",
    totp_needed: "Enter the code from your authenticator app.",
    bad_credentials: "The email or password is wrong.",
    rate_limited: "Too many attempts. Wait a moment and try again.",
    dashboard: "Dashboard",
    apps: "Apps",
    users: "Users",
    jobs: "Jobs",
    version: "Version",
    database: "Database",
    redis: "Redis",
    queued: "Queued jobs",
    dead: "Dead jobs",
    ok: "ok",
    down: "down",
    not_used: "not used",
    search: "Search",
    name: "Name",
    status: "Status",
    active: "active",
    disabled: "disabled",
    disable: "Disable",
    enable: "Enable",
    retry: "Retry",
    kind: "Kind",
    queue: "Queue",
    state: "State",
    attempts: "Attempts",
    last_error: "Last error",
    nothing: "Nothing here.",
    forbidden: "Not allowed",
    forbidden_text: "Your account cannot open this page.",
    profile: "Your profile",
    mood: "Mood",
    save: "Save",
    saved: "Saved.",
    avatar: "Avatar",
    upload: "Upload",
    sessions: "Sessions",
    this_device: "this device",
    revoke: "Sign out",
    last_seen: "Last seen",
    language: "Language",
    next_page: "Next page",
    dead_letters: "Dead-letter queue",
    security: "Security",
    change_password: "Change password",
    current_password: "Current password",
    new_password: "New password",
    password_changed: "Password changed; your other sessions were signed out.",
    two_factor: "Two-factor authentication",
    two_factor_on: "Two-factor authentication is on.",
    two_factor_off: "Two-factor authentication is off.",
    enable_totp: "Turn on",
    disable_totp: "Turn off",
    scan_qr: "Scan this code with your authenticator app, or enter the secret, then type the code it shows.",
    secret: "Secret",
    code: "Code",
    confirm: "Confirm",
    recovery_codes: "Recovery codes: each works once. Keep them somewhere safe; they are shown only now.",
    audit: "Audit log",
    actor: "Actor",
    action: "Action",
    target: "Target",
    time: "Time",
    filter: "Filter",
    schedules: "Schedules",
    last_run: "Last run",
    next_run: "Next run",
    run_now: "Run now",
    queued_now: "Queued.",
    mail: "Mail",
    recipient: "Recipient",
    subject: "Subject",
    preview: "Preview",
    notifications: "Notifications",
    mark_read: "Mark read",
    mark_all_read: "Mark all read",
    unread: "unread",
    api_keys: "API keys",
    key_name: "Key name",
    permissions: "Permissions",
    create: "Create",
    key_once: "Copy this key now: it is shown only once.",
    connected_apps: "Connected apps",
    scopes: "Scopes",
    no_permissions: "Your account holds no permissions to delegate; a key can still identify you.",
    create_user: "Create a user",
    roles: "Roles",
    role: "Role",
    scope: "Scope (resource id, empty for global)",
    grant: "Grant",
    remove: "Remove",
    global: "global",
    impersonate: "Act as this user",
    impersonating: "You are acting as",
    stop_impersonating: "Back to my account",
    reset_mfa: "Turn off two-factor",
    revoke_all: "Sign out everywhere",
    holders: "Holders",
    clients: "OAuth clients",
    redirect_uris: "Redirect URIs (one per line)",
    confidential: "Confidential (a server-side app that keeps a secret)",
    secret_once: "Copy the secret now: it is shown only once.",
    owner: "Owner",
    queues: "Queues",
    waiting: "Waiting",
    oldest: "Oldest waiting",
    running: "Running",
    job: "Job",
    args: "Arguments",
    errors: "Errors",
    cancel: "Cancel",
    retry_selected: "Retry selected",
    cancel_selected: "Cancel selected",
    select: "Select",
    files: "Files",
    size: "Size",
    delete: "Delete",
    last_hour: "The last hour",
    requests_per_min: "Requests per minute",
    errors_per_min: "Server errors per minute",
    jobs_done_per_min: "Jobs completed per minute",
    jobs_failed_per_min: "Job failures per minute",
    sign_in_with: "Sign in with",
    created: "Created",
    live_sessions: "Live sessions",
    impersonated_by: "opened by an operator",
    done_count: "done",
    refused_count: "refused",
    retry_all_dead: "Retry every dead job",
    run_at: "Runs at",
    error_rate: "Server errors (1 h)",
    total: "total",
    peak: "peak",
    fix_fields: "Some fields need fixing; nothing was saved.",
    new_row: "New",
    any: "any",
    sort_by: "Sort by",
    descending: "Descending",
    not_found: "Not found",
    not_found_text: "There is nothing at this address.",
    settings: "Settings and feature flags",
    device: "Device",
    revoke_others: "Sign out all other sessions",
    err_required: "is required",
    err_too_long: "must be at most {max} characters",
    err_range: "must be between {min} and {max}",
    err_number: "must be a whole number",
    err_email: "must be an email address",
    err_choice: "must be one of {values}",
};

/// Tiếng Việt.
pub static VI: Texts = Texts {
    brand: "Sen",
    sign_in: "Đăng nhập",
    sign_out: "Đăng xuất",
    email: "Email",
    password: "Mật khẩu",
    totp: "Mã xác thực",
    totp_needed: "Nhập mã từ ứng dụng xác thực của bạn.",
    bad_credentials: "Email hoặc mật khẩu không đúng.",
    rate_limited: "Bạn đã thử quá nhiều lần. Hãy đợi một lát rồi thử lại.",
    dashboard: "Bảng điều khiển",
    apps: "Ứng dụng",
    users: "Người dùng",
    jobs: "Tác vụ",
    version: "Phiên bản",
    database: "Cơ sở dữ liệu",
    redis: "Redis",
    queued: "Tác vụ đang chờ",
    dead: "Tác vụ thất bại",
    ok: "ổn",
    down: "lỗi",
    not_used: "không dùng",
    search: "Tìm",
    name: "Tên",
    status: "Trạng thái",
    active: "đang hoạt động",
    disabled: "đã khoá",
    disable: "Khoá",
    enable: "Mở khoá",
    retry: "Chạy lại",
    kind: "Loại",
    queue: "Hàng đợi",
    state: "Trạng thái",
    attempts: "Số lần thử",
    last_error: "Lỗi gần nhất",
    nothing: "Chưa có gì.",
    forbidden: "Không được phép",
    forbidden_text: "Tài khoản của bạn không mở được trang này.",
    profile: "Hồ sơ của bạn",
    mood: "Tâm trạng",
    save: "Lưu",
    saved: "Đã lưu.",
    avatar: "Ảnh đại diện",
    upload: "Tải lên",
    sessions: "Phiên đăng nhập",
    this_device: "thiết bị này",
    revoke: "Đăng xuất",
    last_seen: "Lần cuối",
    language: "Ngôn ngữ",
    next_page: "Trang sau",
    dead_letters: "Hàng đợi tác vụ hỏng",
    security: "Bảo mật",
    change_password: "Đổi mật khẩu",
    current_password: "Mật khẩu hiện tại",
    new_password: "Mật khẩu mới",
    password_changed: "Đã đổi mật khẩu; các phiên khác đã bị đăng xuất.",
    two_factor: "Xác thực hai lớp",
    two_factor_on: "Xác thực hai lớp đang bật.",
    two_factor_off: "Xác thực hai lớp đang tắt.",
    enable_totp: "Bật",
    disable_totp: "Tắt",
    scan_qr: "Quét mã này bằng ứng dụng xác thực, hoặc nhập khoá bí mật, rồi nhập mã ứng dụng hiển thị.",
    secret: "Khoá bí mật",
    code: "Mã",
    confirm: "Xác nhận",
    recovery_codes: "Mã khôi phục: mỗi mã dùng được một lần. Hãy cất giữ cẩn thận; chúng chỉ hiện lần này.",
    audit: "Nhật ký kiểm toán",
    actor: "Người thực hiện",
    action: "Hành động",
    target: "Đối tượng",
    time: "Thời gian",
    filter: "Lọc",
    schedules: "Lịch chạy",
    last_run: "Lần chạy trước",
    next_run: "Lần chạy tới",
    run_now: "Chạy ngay",
    queued_now: "Đã đưa vào hàng đợi.",
    mail: "Thư",
    recipient: "Người nhận",
    subject: "Tiêu đề",
    preview: "Xem trước",
    notifications: "Thông báo",
    mark_read: "Đánh dấu đã đọc",
    mark_all_read: "Đánh dấu tất cả đã đọc",
    unread: "chưa đọc",
    api_keys: "Khoá API",
    key_name: "Tên khoá",
    permissions: "Quyền",
    create: "Tạo",
    key_once: "Hãy sao chép khoá này ngay: nó chỉ hiện một lần.",
    connected_apps: "Ứng dụng đã kết nối",
    scopes: "Phạm vi",
    no_permissions: "Tài khoản của bạn không có quyền nào để uỷ quyền; khoá vẫn xác định được bạn.",
    create_user: "Tạo người dùng",
    roles: "Vai trò",
    role: "Vai trò",
    scope: "Phạm vi (mã tài nguyên, để trống nếu toàn cục)",
    grant: "Cấp",
    remove: "Gỡ",
    global: "toàn cục",
    impersonate: "Hành động thay người này",
    impersonating: "Bạn đang hành động với tư cách",
    stop_impersonating: "Quay về tài khoản của tôi",
    reset_mfa: "Tắt xác thực hai lớp",
    revoke_all: "Đăng xuất khỏi mọi nơi",
    holders: "Người giữ",
    clients: "Ứng dụng OAuth",
    redirect_uris: "URI chuyển hướng (mỗi dòng một URI)",
    confidential: "Bí mật (ứng dụng phía máy chủ giữ được secret)",
    secret_once: "Hãy sao chép secret ngay: nó chỉ hiện một lần.",
    owner: "Chủ sở hữu",
    queues: "Hàng đợi",
    waiting: "Đang chờ",
    oldest: "Chờ lâu nhất",
    running: "Đang chạy",
    job: "Công việc",
    args: "Tham số",
    errors: "Lỗi",
    cancel: "Huỷ",
    retry_selected: "Thử lại mục đã chọn",
    cancel_selected: "Huỷ mục đã chọn",
    select: "Chọn",
    files: "Tệp",
    size: "Kích thước",
    delete: "Xoá",
    last_hour: "Một giờ qua",
    requests_per_min: "Yêu cầu mỗi phút",
    errors_per_min: "Lỗi máy chủ mỗi phút",
    jobs_done_per_min: "Công việc hoàn thành mỗi phút",
    jobs_failed_per_min: "Lần lỗi công việc mỗi phút",
    sign_in_with: "Đăng nhập bằng",
    created: "Ngày tạo",
    live_sessions: "Phiên đang hoạt động",
    impersonated_by: "do quản trị viên mở",
    done_count: "đã xong",
    refused_count: "bị từ chối",
    retry_all_dead: "Thử lại mọi công việc chết",
    run_at: "Chạy lúc",
    error_rate: "Lỗi máy chủ (1 giờ)",
    total: "tổng",
    peak: "cao nhất",
    fix_fields: "Một số trường cần sửa; chưa có gì được lưu.",
    new_row: "Thêm mới",
    any: "tất cả",
    sort_by: "Sắp xếp theo",
    descending: "Giảm dần",
    not_found: "Không tìm thấy",
    not_found_text: "Không có gì ở địa chỉ này.",
    settings: "Cài đặt và cờ tính năng",
    device: "Thiết bị",
    revoke_others: "Đăng xuất mọi phiên khác",
    err_required: "là bắt buộc",
    err_too_long: "tối đa {max} ký tự",
    err_range: "phải nằm trong khoảng {min} đến {max}",
    err_number: "phải là số nguyên",
    err_email: "phải là địa chỉ email",
    err_choice: "phải là một trong {values}",
};
