/** A slug in a URL path: the slashes stay literal, anything else reserved is escaped per segment. */
export const slugPath = (slug: string): string => slug.split('/').map(encodeURIComponent).join('/');
