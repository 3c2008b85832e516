//! Linux errno values and TrueNAS' custom ones, with the names the wire carries in `errname`.

pub const EPERM: i32 = 1;
pub const ENOENT: i32 = 2;
pub const EAGAIN: i32 = 11;
pub const EACCES: i32 = 13;
pub const EFAULT: i32 = 14;
pub const EBUSY: i32 = 16;
pub const EEXIST: i32 = 17;
pub const EINVAL: i32 = 22;
pub const EOPNOTSUPP: i32 = 95;
pub const ETOOMANYREFS: i32 = 109;
pub const ENOMETHOD: i32 = 201;
pub const ENOTAUTHENTICATED: i32 = 207;

/// `errno.errorcode[code]` or the TrueNAS `ErrnoMixin` name; `EUNKNOWN` otherwise.
pub fn errname(code: i32) -> &'static str {
    match code {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        3 => "ESRCH",
        4 => "EINTR",
        5 => "EIO",
        EAGAIN => "EAGAIN",
        12 => "ENOMEM",
        EACCES => "EACCES",
        EFAULT => "EFAULT",
        EBUSY => "EBUSY",
        EEXIST => "EEXIST",
        EINVAL => "EINVAL",
        28 => "ENOSPC",
        38 => "ENOSYS",
        EOPNOTSUPP => "EOPNOTSUPP",
        ETOOMANYREFS => "ETOOMANYREFS",
        110 => "ETIMEDOUT",
        ENOMETHOD => "ENOMETHOD",
        202 => "ESERVICESTARTFAILURE",
        203 => "EALERTCHECKERUNAVAILABLE",
        204 => "EREMOTENODEERROR",
        205 => "EDATASETISLOCKED",
        206 => "EINVALIDRRDTIMESTAMP",
        ENOTAUTHENTICATED => "ENOTAUTHENTICATED",
        208 => "ESSLCERTVERIFICATIONERROR",
        209 => "EREBOOTREQUIRED",
        210 => "EHAUNAVAILABLE",
        _ => "EUNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_truenas() {
        for (code, name) in [
            (2, "ENOENT"),
            (11, "EAGAIN"),
            (13, "EACCES"),
            (16, "EBUSY"),
            (22, "EINVAL"),
            (109, "ETOOMANYREFS"),
            (201, "ENOMETHOD"),
            (207, "ENOTAUTHENTICATED"),
            (9999, "EUNKNOWN"),
        ] {
            assert_eq!(errname(code), name, "errno {code}");
        }
    }
}
