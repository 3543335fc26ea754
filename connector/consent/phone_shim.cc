/*
 * phone_shim — see phone_shim.h.  The only C++ in optsync.
 *
 * No exception may cross into C: every entry point catches everything.
 */
#include "phone_shim.h"

#include <cstring>
#include <list>
#include <mutex>
#include <string>
#include <vector>

#include <phonenumbers/logger.h>
#include <phonenumbers/phonemetadata.pb.h>
#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>

/*
 * The serialized metadata libphonenumber itself loads (its metadata.h,
 * which Debian does not install; the symbols are exported).
 */
namespace i18n
{
namespace phonenumbers
{
int metadata_size();
const void *metadata_get();
} // namespace phonenumbers
} // namespace i18n

using i18n::phonenumbers::PhoneMetadata;
using i18n::phonenumbers::PhoneMetadataCollection;
using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberDesc;
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
        out->valid = u->IsValidNumber(number) ? 1 : 0;
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

extern "C" const char *phone_shim_possible_length(int calling_code, int len)
{
    try {
        PhoneNumber number;
        unsigned long long nsn = 1;

        if (len < 1 || len > 17)
            return len < 1 ? "too short" : "too long";
        for (int i = 1; i < len; i++)
            nsn *= 10;
        number.set_country_code(calling_code);
        number.set_national_number(nsn);
        return possible_reason(util()->IsPossibleNumberWithReason(number));
    } catch (...) {
        return "cannot be parsed";
    }
}

/* ---- metadata ------------------------------------------------------------ */

namespace
{

struct metadata_store {
    PhoneMetadataCollection collection;
    std::vector<phone_shim_meta> metas; /* points into collection */
};

const metadata_store *store_ptr;

void desc_of(phone_shim_desc *out, const PhoneNumberDesc &d)
{
    out->pattern = d.national_number_pattern().c_str();
    out->example = d.example_number().c_str();
    out->lengths_listed = d.possible_length_size() > 0;
    out->lengths = 0;
    for (int i = 0; i < d.possible_length_size(); i++) {
        int n = d.possible_length(i);
        if (n >= 0 && n < 32)
            out->lengths |= 1u << n;
    }
}

void meta_of(phone_shim_meta *out, const PhoneMetadata &m)
{
    const PhoneNumberDesc *descs[PHONE_SHIM_DESCS] = {
        &m.general_desc(), &m.premium_rate(), &m.toll_free(),
        &m.shared_cost(),  &m.voip(),         &m.personal_number(),
        &m.pager(),        &m.uan(),          &m.voicemail(),
        &m.fixed_line(),   &m.mobile(),
    };

    std::memset(out->id, 0, sizeof(out->id));
    std::memcpy(out->id, m.id().c_str(),
                m.id().size() < sizeof(out->id) ? m.id().size() : 3);
    out->country_code = m.country_code();
    out->international_prefix = m.international_prefix().c_str();
    out->national_prefix_for_parsing = m.national_prefix_for_parsing().c_str();
    out->national_prefix_transform_rule =
        m.national_prefix_transform_rule().c_str();
    out->leading_digits = m.leading_digits().c_str();
    out->same_mobile_and_fixed_line_pattern =
        m.same_mobile_and_fixed_line_pattern() ? 1 : 0;
    for (int i = 0; i < PHONE_SHIM_DESCS; i++)
        desc_of(&out->desc[i], *descs[i]);
}

/* Read once; kept for the process (reachable, so no leak). */
const metadata_store *store()
{
    static std::once_flag once;
    std::call_once(once, [] {
        metadata_store *st = new metadata_store();
        if (st->collection.ParseFromArray(
                i18n::phonenumbers::metadata_get(),
                i18n::phonenumbers::metadata_size())) {
            st->metas.resize(st->collection.metadata_size());
            for (int i = 0; i < st->collection.metadata_size(); i++)
                meta_of(&st->metas[i], st->collection.metadata(i));
        }
        store_ptr = st;
    });
    return store_ptr;
}

} // namespace

extern "C" const struct phone_shim_meta *phone_shim_meta_region(const char *id)
{
    try {
        for (const phone_shim_meta &m : store()->metas)
            if (std::strcmp(m.id, id) == 0 && std::strcmp(id, "001") != 0)
                return &m;
    } catch (...) {
    }
    return nullptr;
}

extern "C" const struct phone_shim_meta *phone_shim_meta_non_geo(int code)
{
    try {
        for (const phone_shim_meta &m : store()->metas)
            if (std::strcmp(m.id, "001") == 0 && m.country_code == code)
                return &m;
    } catch (...) {
    }
    return nullptr;
}

extern "C" size_t phone_shim_regions_for_calling_code(char out[][4], size_t max,
                                                      int code)
{
    try {
        std::list<std::string> regions;
        size_t n = 0;

        util()->GetRegionCodesForCountryCallingCode(code, &regions);
        for (const std::string &r : regions) {
            if (n == max || r.size() > 3)
                break;
            std::memcpy(out[n++], r.c_str(), r.size() + 1);
        }
        return n;
    } catch (...) {
        return 0;
    }
}
