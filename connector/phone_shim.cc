/*
 * phone_shim — see phone_shim.h.  The only C++ in optsync.
 *
 * No exception may cross into C: every entry point catches everything.
 */
#include "phone_shim.h"

#include <cstring>
#include <mutex>
#include <string>

#include <phonenumbers/logger.h>
#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

namespace
{

const PhoneNumberUtil *util()
{
    static std::once_flag once;
    std::call_once(once, [] {
        // libphonenumber logs parse failures to stdout by default; we
        // report them ourselves.
        PhoneNumberUtil::GetInstance()->SetLogger(
            new i18n::phonenumbers::NullLogger());
    });
    return PhoneNumberUtil::GetInstance();
}

const char *parse_error_reason(PhoneNumberUtil::ErrorType e)
{
    switch (e) {
    case PhoneNumberUtil::INVALID_COUNTRY_CODE_ERROR:
        return "unknown country calling code (or no region to assume)";
    case PhoneNumberUtil::NOT_A_NUMBER: return "not a phone number";
    case PhoneNumberUtil::TOO_SHORT_AFTER_IDD:
        return "too short after the international prefix";
    case PhoneNumberUtil::TOO_SHORT_NSN: return "too short";
    case PhoneNumberUtil::TOO_LONG_NSN: return "too long";
    default: return "cannot be parsed";
    }
}

const char *possible_reason(PhoneNumberUtil::ValidationResult r)
{
    switch (r) {
    case PhoneNumberUtil::IS_POSSIBLE: return nullptr;
    case PhoneNumberUtil::IS_POSSIBLE_LOCAL_ONLY:
        return "too short (a local number without its area code)";
    case PhoneNumberUtil::INVALID_COUNTRY_CODE:
        return "unknown country calling code";
    case PhoneNumberUtil::TOO_SHORT: return "too short";
    case PhoneNumberUtil::TOO_LONG: return "too long";
    default: return "impossible length for its country";
    }
}

int parse(struct phone_shim_result *out, const char *input, const char *region,
          const char **reason)
{
    const PhoneNumberUtil *u = util();
    PhoneNumber number;
    std::string text(input);
    std::string e164, rc;
    PhoneNumberUtil::ErrorType e =
        u->Parse(text, region && *region ? region : "ZZ", &number);

    if (e != PhoneNumberUtil::NO_PARSING_ERROR) {
        *reason = parse_error_reason(e);
        return -1;
    }
    if (const char *why =
            possible_reason(u->IsPossibleNumberWithReason(number))) {
        *reason = why;
        return -1;
    }
    u->Format(number, PhoneNumberUtil::E164, &e164);
    if (e164.size() >= sizeof(out->e164)) {
        *reason = "too long";
        return -1;
    }
    std::memcpy(out->e164, e164.c_str(), e164.size() + 1);
    out->calling_code = number.country_code();
    u->GetRegionCodeForNumber(number, &rc);
    if (rc.size() == 2) {
        std::memcpy(out->region, rc.c_str(), 3);
    } else {
        out->region[0] = '\0';
    }
    out->valid = u->IsValidNumber(number) ? 1 : 0;
    PhoneNumberUtil::PhoneNumberType t = u->GetNumberType(number);
    out->mobile = t == PhoneNumberUtil::MOBILE ||
                  t == PhoneNumberUtil::FIXED_LINE_OR_MOBILE;
    return 0;
}

} // namespace

extern "C" int phone_shim_parse(struct phone_shim_result *out,
                                const char *input, const char *region,
                                const char **reason)
{
    try {
        return parse(out, input, region, reason);
    } catch (...) {
        *reason = "cannot be parsed";
        return -1;
    }
}

extern "C" int phone_shim_calling_code_for_region(const char *region)
{
    try {
        return util()->GetCountryCodeForRegion(region);
    } catch (...) {
        return 0;
    }
}

extern "C" int phone_shim_region_for_calling_code(char out[3], int calling_code)
{
    try {
        std::string rc;
        util()->GetRegionCodeForCountryCode(calling_code, &rc);
        if (rc.size() != 2 || rc == "ZZ")
            return -1;
        std::memcpy(out, rc.c_str(), 3);
        return 0;
    } catch (...) {
        return -1;
    }
}
