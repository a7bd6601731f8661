"""Platform sources: YouTube, TikTok and Twitch channels and links through yt-dlp."""
