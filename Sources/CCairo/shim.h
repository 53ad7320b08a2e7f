// CCairo: cairo's image surfaces, paths and toy text API; the Pictures module owns every handle
// (Sources/Pictures/Canvas.swift).
#include <cairo.h>
#include <string.h>
#if CAIRO_HAS_FT_FONT
#include <cairo-ft.h>
#endif

// Not API: the family of the font face cairo actually chose for `cr`'s current font (fontconfig
// substitutes another when the requested family is not installed), copied into `buffer`.
// Returns 0 when the font backend is not FreeType (e.g. Quartz on macOS) and the family is unknown.
static inline int ccairo_resolved_family(cairo_t *cr, char *buffer, size_t size) {
    if (size == 0) return 0;
    buffer[0] = 0;
#if CAIRO_HAS_FT_FONT
    cairo_scaled_font_t *font = cairo_get_scaled_font(cr);
    if (cairo_scaled_font_get_type(font) != CAIRO_FONT_TYPE_FT) return 0;
    FT_Face face = cairo_ft_scaled_font_lock_face(font);
    if (face == NULL) return 0;
    if (face->family_name != NULL) {
        strncpy(buffer, face->family_name, size - 1);
        buffer[size - 1] = 0;
    }
    cairo_ft_scaled_font_unlock_face(font);
    return buffer[0] != 0;
#else
    (void)cr;
    return 0;
#endif
}
