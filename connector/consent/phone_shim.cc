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

/*
 * IsValidNumber first finds the number's region, testing every region of
 * a shared calling code (+44: GB, GG, IM, JE; +1: two dozen) against its
 * patterns.  Most numbers are from the region they were typed for, or
 * else from their calling code's main region: try that one first.
 */
bool valid(const PhoneNumberUtil *u, const PhoneNumber &number,
           const char *region)
{
    std::string main_region;

    if (region && *region &&
        u->GetCountryCodeForRegion(region) == number.country_code()) {
        if (u->IsValidNumberForRegion(number, region))
            return true;
    } else {
        u->GetRegionCodeForCountryCode(number.country_code(), &main_region);
        if (main_region.size() == 2 &&
            u->IsValidNumberForRegion(number, main_region))
            return true;
    }
    return u->IsValidNumber(number);
}

int parse(struct phone_shim_result *out, const char *input, const char *region,
          unsigned want, const char **reason)
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
    out->region[0] = '\0';
    out->valid = out->mobile = 0;
    if (want & PHONE_SHIM_REGION) {
        u->GetRegionCodeForNumber(number, &rc);
        if (rc.size() == 2)
            std::memcpy(out->region, rc.c_str(), 3);
    }
    if (want & PHONE_SHIM_VALID)
        out->valid = valid(u, number, region) ? 1 : 0;
    if (want & PHONE_SHIM_TYPE) {
        PhoneNumberUtil::PhoneNumberType t = u->GetNumberType(number);
        out->mobile = t == PhoneNumberUtil::MOBILE ||
                      t == PhoneNumberUtil::FIXED_LINE_OR_MOBILE;
    }
    return 0;
}

} // namespace

extern "C" int phone_shim_parse_want(struct phone_shim_result *out,
                                     const char *input, const char *region,
                                     unsigned want, const char **reason)
{
    try {
        return parse(out, input, region, want, reason);
    } catch (...) {
        *reason = "cannot be parsed";
        return -1;
    }
}

extern "C" int phone_shim_parse(struct phone_shim_result *out,
                                const char *input, const char *region,
                                const char **reason)
{
    return phone_shim_parse_want(out, input, region, PHONE_SHIM_ALL, reason);
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
